"""The permutation null model: relevance against shuffled category -> superclass labels."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from semprobe.errors import SemprobeError
from semprobe.graph import (
    FeatureCategoryGraph,
    Rule,
    frozen_copy,
    top_k_graph,
    two_neighbours,
)
from semprobe.relevance.score import (
    RelevanceResult,
    batched_relevance,
    chance_of_codes,
    encode_superclasses,
    neighbour_weights,
    relevance_result,
)

#: Null values within this distance of the observed mean count as ``>=`` in the p-value, so that
#: a floating-point summation order cannot make an equal value look smaller.
TIE_TOLERANCE = 1e-12


@dataclass(frozen=True, eq=False)
class RelevanceTest:
    """Observed relevance against the superclass-permutation null model.

    Attributes
    ----------
    observed:
        The observed :class:`RelevanceResult`.
    null:
        The mean relevance under each permutation, float64 array of length ``n_permutations``;
        read-only.
    null_mean, null_std:
        Mean and sample standard deviation (``ddof=1``; 0 when ``n_permutations == 1``) of
        ``null``; NaN when every category is isolated.
    z:
        ``(observed.mean - null_mean) / null_std``; NaN when ``null_std`` is 0 or undefined.
    p_value:
        One-sided ``(1 + #{null >= observed.mean}) / (1 + n_permutations)`` in (0, 1]; 1.0 when
        every category is isolated (there is nothing to test).
    chance:
        Analytic chance level ``(s - 1) / (C - 1)`` when all superclasses have size ``s``, else
        None.
    n_permutations, seed:
        The null model's settings.
    k, rule:
        The graph's K and rule, when the graph was built here; None for given neighbour counts.
    multiplicity:
        Whether 2-neighbours were weighted by the number of shared features.
    """

    observed: RelevanceResult
    null: NDArray[np.float64]
    null_mean: float
    null_std: float
    z: float
    p_value: float
    chance: float | None
    n_permutations: int
    seed: int
    k: int | None
    rule: str | None
    multiplicity: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "null", frozen_copy(self.null))

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (NaN becomes None; the per-permutation values are left out).

        Returns
        -------
        dict
            Keys ``k``, ``rule``, ``multiplicity``, ``total``, ``mean``, ``n_isolated``,
            ``n_categories``, ``null_mean``, ``null_std``, ``z``, ``p``, ``chance``,
            ``n_permutations``, ``seed`` and ``per_category`` (a list).
        """

        def clean(value: float | None) -> float | None:
            return None if value is None or math.isnan(value) else float(value)

        return {
            "k": self.k,
            "rule": self.rule,
            "multiplicity": self.multiplicity,
            "total": clean(self.observed.total),
            "mean": clean(self.observed.mean),
            "n_isolated": self.observed.n_isolated,
            "n_categories": self.observed.n_categories,
            "null_mean": clean(self.null_mean),
            "null_std": clean(self.null_std),
            "z": clean(self.z),
            "p": clean(self.p_value),
            "chance": clean(self.chance),
            "n_permutations": self.n_permutations,
            "seed": self.seed,
            "per_category": [float(v) for v in self.observed.per_category],
        }


def check_permutations(n_permutations: object, seed: object) -> tuple[int, int]:
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, numbers.Integral):
        raise SemprobeError(f"n_permutations must be an integer, got {n_permutations!r}")
    if n_permutations < 1:
        raise SemprobeError(f"n_permutations must be at least 1, got {n_permutations}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise SemprobeError(f"seed must be a non-negative integer, got {seed!r}")
    return int(n_permutations), int(seed)


def permuted_codes(codes: NDArray[np.int64], n_permutations: int, seed: int) -> NDArray[np.int64]:
    """``n_permutations`` shuffles of the label vector: superclass sizes are kept."""
    rng = np.random.default_rng(seed)
    return rng.permuted(np.tile(codes, (n_permutations, 1)), axis=1)


def null_distribution(
    neighbour_counts: ArrayLike,
    superclasses: Sequence[object] | ArrayLike,
    n_permutations: int = 1000,
    seed: int = 0,
    multiplicity: bool = False,
) -> NDArray[np.float64]:
    """Relevance means under random relabelling of the categories' superclasses.

    Each permutation shuffles the category -> superclass assignment (keeping superclass sizes
    and the graph); all permutations are evaluated at once: with ``A`` the neighbour weights and
    ``S_p`` the permuted same-superclass matrix, category ``i``'s numerator is
    ``(A * S_p).sum(1)[i]``.

    Parameters
    ----------
    neighbour_counts:
        ``C x C`` 2-neighbour counts (see :func:`relevance`).
    superclasses:
        One label per category, at least two distinct.
    n_permutations:
        Number of permutations, >= 1.
    seed:
        Seed of the :class:`numpy.random.Generator`; equal seeds give identical results.
    multiplicity:
        As in :func:`relevance`.

    Returns
    -------
    numpy.ndarray
        float64 array of ``n_permutations`` null relevance means (all NaN if every category is
        isolated).
    """
    n_perm, seed_ = check_permutations(n_permutations, seed)
    weights = neighbour_weights(neighbour_counts, multiplicity)
    codes = encode_superclasses(superclasses, weights.shape[0])
    return batched_relevance(weights, permuted_codes(codes, n_perm, seed_))[1]


def permutation_test(
    weights: NDArray[np.int64],
    codes: NDArray[np.int64],
    permuted: NDArray[np.int64],
    seed: int,
    k: int | None,
    rule: str | None,
    multiplicity: bool,
) -> RelevanceTest:
    observed = relevance_result(weights, codes)
    null = batched_relevance(weights, permuted)[1]
    n_perm = int(null.size)
    if observed.n_connected == 0:
        null_mean = null_std = z = math.nan
        p_value = 1.0
    else:
        null_mean = float(null.mean())
        null_std = float(null.std(ddof=1)) if n_perm > 1 else 0.0
        z = (observed.mean - null_mean) / null_std if null_std > 0 else math.nan
        n_ge = int((null >= observed.mean - TIE_TOLERANCE).sum())
        p_value = (1 + n_ge) / (1 + n_perm)
    chance = chance_of_codes(codes)
    return RelevanceTest(
        observed=observed,
        null=null,
        null_mean=null_mean,
        null_std=null_std,
        z=z,
        p_value=p_value,
        chance=chance,
        n_permutations=n_perm,
        seed=seed,
        k=k,
        rule=rule,
        multiplicity=multiplicity,
    )


def relevance_with_null(
    source: FeatureCategoryGraph | ArrayLike,
    superclasses: Sequence[object] | ArrayLike,
    k: int | None = None,
    *,
    rule: Rule = "category",
    multiplicity: bool = False,
    n_permutations: int = 1000,
    seed: int = 0,
) -> RelevanceTest:
    """Observed relevance with its permutation null model, p-value and chance level.

    Parameters
    ----------
    source:
        One of: probe weights ``W`` (``C x F``) together with ``k``, from which ``W_K`` is built
        with ``rule``; a :class:`~semprobe.graph.FeatureCategoryGraph` (``k`` must be None or
        equal to its K); or a ``C x C`` neighbour count matrix with ``k=None``.
    superclasses:
        One label per category, at least two distinct.
    k:
        K for ``W``; None when ``source`` is a graph or neighbour counts.
    rule:
        ``"category"`` or ``"feature"``, see :func:`semprobe.graph.top_k_graph`.
    multiplicity:
        As in :func:`relevance`.
    n_permutations:
        Permutations in the null model, >= 1.
    seed:
        Generator seed; equal inputs and seed give identical results.

    Returns
    -------
    RelevanceTest
        Observed result, null values, null mean/std, z, p-value and analytic chance level.
    """
    n_perm, seed_ = check_permutations(n_permutations, seed)
    graph_k: int | None = None
    graph_rule: str | None = None
    if isinstance(source, FeatureCategoryGraph):
        if k is not None and k != source.k:
            raise SemprobeError(f"k={k} given for a graph built with K={source.k}")
        counts = two_neighbours(source, multiplicity=multiplicity)
        graph_k, graph_rule = source.k, source.rule
    elif k is not None:
        graph = top_k_graph(source, k, rule=rule)
        counts = two_neighbours(graph, multiplicity=multiplicity)
        graph_k, graph_rule = graph.k, graph.rule
    else:
        counts = np.asarray(source)
        if counts.ndim == 2 and counts.shape[0] != counts.shape[1]:
            raise SemprobeError(
                f"a {counts.shape[0]} x {counts.shape[1]} matrix is not a neighbour count matrix; "
                "pass k to build W_K from probe weights"
            )
    weights = neighbour_weights(counts, multiplicity)
    codes = encode_superclasses(superclasses, weights.shape[0])
    permuted = permuted_codes(codes, n_perm, seed_)
    return permutation_test(weights, codes, permuted, seed_, graph_k, graph_rule, multiplicity)
