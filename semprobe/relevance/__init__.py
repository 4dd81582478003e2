"""Semantic relevance of a feature-category graph, with a permutation null model.

Lavoie et al., "Simplicial Embeddings in Self-Supervised Learning and Downstream Classification",
ICLR 2023 (arXiv 2204.00616), Section 5. For the graph ``W_K`` (:mod:`semprobe.graph`) let
``N(c_i)`` be the 2-neighbours of category ``c_i`` (the other categories sharing a feature with
it) and ``is_super(c_i, c_j) = 1`` when both belong to the same superclass. Then::

    Relevance(W_K) = sum_i  sum_{c_j in N(c_i)} is_super(c_i, c_j) / |N(c_i)|

:func:`relevance` scores one graph (:mod:`.score`), :func:`relevance_with_null` tests it against
permuted superclass labels (:mod:`.null`), :func:`relevance_curve` does both for every K
(:mod:`.curve`). The choices made where the paper is silent (isolated categories, multiplicity,
the null model, the chance level) are in docs/relevance.md.

Examples
--------
>>> import numpy as np
>>> from semprobe.graph import top_k_graph, two_neighbours
>>> from semprobe.relevance import relevance
>>> W = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # 4 categories, 2 features
>>> result = relevance(two_neighbours(top_k_graph(W, 1)), ["a", "a", "b", "b"])
>>> result.total, result.mean
(4.0, 1.0)
"""

from semprobe.relevance.curve import CURVE_COLUMNS, relevance_curve
from semprobe.relevance.null import (
    TIE_TOLERANCE,
    RelevanceTest,
    null_distribution,
    relevance_with_null,
)
from semprobe.relevance.score import RelevanceResult, chance_level, encode_superclasses, relevance

__all__ = [
    "CURVE_COLUMNS",
    "TIE_TOLERANCE",
    "RelevanceResult",
    "RelevanceTest",
    "chance_level",
    "encode_superclasses",
    "null_distribution",
    "relevance",
    "relevance_curve",
    "relevance_with_null",
]
