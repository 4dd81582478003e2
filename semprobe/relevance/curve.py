"""The relevance curve: relevance and its null for every K, from one probe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from semprobe.errors import SemprobeError
from semprobe.graph import (
    Rule,
    check_weights,
    top_k_graph,
    two_neighbours,
)
from semprobe.relevance.null import check_permutations, permutation_test, permuted_codes
from semprobe.relevance.score import encode_superclasses, neighbour_weights

CURVE_COLUMNS: tuple[str, ...] = (
    "k",
    "total",
    "mean",
    "n_isolated",
    "null_mean",
    "null_std",
    "z",
    "p",
)


def relevance_curve(
    weights: ArrayLike,
    superclasses: Sequence[object] | ArrayLike,
    ks: Sequence[int] | ArrayLike,
    rule: Rule = "category",
    multiplicity: bool = False,
    n_permutations: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Relevance of ``W_K`` as a function of K, from one probe.

    Every K is tested against the *same* permutations (one seed), so the null curves are
    comparable across K and the whole frame is reproducible.

    Parameters
    ----------
    weights:
        Probe weights ``W``, ``C x F``.
    superclasses:
        One label per category, at least two distinct.
    ks:
        The K values, in the order the rows should have (e.g. ``range(1, 51)``); each must be
        valid for ``rule``.
    rule, multiplicity:
        See :func:`semprobe.graph.top_k_graph` and :func:`relevance`.
    n_permutations, seed:
        Null model settings, see :func:`relevance_with_null`.

    Returns
    -------
    pandas.DataFrame
        One row per K with columns ``k`` (int64), ``total``, ``mean``, ``n_isolated`` (int64),
        ``null_mean``, ``null_std``, ``z``, ``p`` (float64).
    """
    n_perm, seed_ = check_permutations(n_permutations, seed)
    array = check_weights(weights)
    k_list = list(np.asarray(ks, dtype=object).reshape(-1))
    if not k_list:
        raise SemprobeError("ks must contain at least one K")
    codes = encode_superclasses(superclasses, array.shape[0])
    permuted = permuted_codes(codes, n_perm, seed_)
    rows: list[dict[str, Any]] = []
    for k in k_list:
        graph = top_k_graph(array, k, rule=rule)
        counts = two_neighbours(graph, multiplicity=multiplicity)
        test = permutation_test(
            neighbour_weights(counts, multiplicity),
            codes,
            permuted,
            seed_,
            graph.k,
            graph.rule,
            multiplicity,
        )
        rows.append(
            {
                "k": graph.k,
                "total": test.observed.total,
                "mean": test.observed.mean,
                "n_isolated": test.observed.n_isolated,
                "null_mean": test.null_mean,
                "null_std": test.null_std,
                "z": test.z,
                "p": test.p_value,
            }
        )
    frame = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    return frame.astype({"k": np.int64, "n_isolated": np.int64}).astype(
        {c: np.float64 for c in CURVE_COLUMNS if c not in ("k", "n_isolated")}
    )
