"""Semantic relevance of a feature-category graph, with a permutation null model.

Lavoie et al., "Simplicial Embeddings in Self-Supervised Learning and Downstream Classification",
ICLR 2023 (arXiv 2204.00616), Section 5. For the graph ``W_K`` (:mod:`semprobe.graph`) let
``N(c_i)`` be the 2-neighbours of category ``c_i`` (the other categories sharing a feature with
it) and ``is_super(c_i, c_j) = 1`` when both belong to the same superclass. Then::

    Relevance(W_K) = sum_i  sum_{c_j in N(c_i)} is_super(c_i, c_j) / |N(c_i)|

Choices made here:

* A category with no 2-neighbour (``|N(c_i)| = 0``, *isolated*) contributes 0 to the sum. The
  reported ``mean`` averages only over the non-isolated categories (NaN if there are none), so
  it is the expected fraction of same-superclass 2-neighbours and comparable across K.
* ``multiplicity=True`` weights each 2-neighbour by the number of features it shares, in both
  numerator and denominator.
* The null model permutes the category -> superclass assignment uniformly at random, which keeps
  every superclass size and the graph itself. The statistic is the mean; because the set of
  isolated categories does not depend on the labels, ``total = mean * n_connected`` and a test on
  the total would give the same z and p.
* With ``s`` categories in each superclass (all equal) among ``C``, each neighbour of ``c_i`` is
  one of the other ``C - 1`` categories, ``s - 1`` of which share its superclass: the chance
  level is ``(s - 1) / (C - 1)`` (CIFAR-100: 4/99).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from semprobe.errors import SemprobeError
from semprobe.graph import (
    FeatureCategoryGraph,
    Rule,
    check_weights,
    frozen_copy,
    top_k_graph,
    two_neighbours,
)

__all__ = [
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

#: Null values within this distance of the observed mean count as ``>=`` in the p-value, so that
#: a floating-point summation order cannot make an equal value look smaller.
TIE_TOLERANCE = 1e-12

# Upper bound on the elements of one (permutations x C x C) block: keeps memory at a few tens of
# MB whatever C and n_permutations are.
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True, eq=False)
class RelevanceResult:
    """Semantic relevance of one graph.

    Attributes
    ----------
    total:
        ``Relevance(W_K)``, the paper's sum over categories.
    mean:
        ``total`` divided by the number of non-isolated categories; NaN if all are isolated.
    n_isolated:
        Categories without any 2-neighbour (each contributes 0).
    n_categories:
        C.
    per_category:
        float64 array (length C) of each category's fraction of same-superclass 2-neighbours,
        0 for isolated categories; read-only.
    isolated:
        bool array (length C), True where ``|N(c_i)| = 0``; read-only.
    """

    total: float
    mean: float
    n_isolated: int
    n_categories: int
    per_category: NDArray[np.float64]
    isolated: NDArray[np.bool_]

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_category", frozen_copy(self.per_category))
        object.__setattr__(self, "isolated", frozen_copy(self.isolated))

    @property
    def n_connected(self) -> int:
        """Categories with at least one 2-neighbour."""
        return self.n_categories - self.n_isolated


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


def _label_list(superclasses: Sequence[object] | ArrayLike) -> list[object]:
    """Labels as a flat list of plain Python values (numpy scalars unwrapped)."""
    if isinstance(superclasses, str | bytes):
        raise SemprobeError("superclasses must be a sequence of labels, not a single string")
    if isinstance(superclasses, list | tuple):
        items = list(superclasses)
    elif hasattr(superclasses, "__array__"):
        # Arrays, tensors and Series: tolist() yields plain str/int/float values.
        items = np.asarray(superclasses).reshape(-1).tolist()
    else:
        try:
            items = list(superclasses)  # type: ignore[arg-type]
        except TypeError:
            raise SemprobeError("superclasses must be a sequence of labels") from None
    return [item.item() if isinstance(item, np.generic) else item for item in items]


def _chance(codes: NDArray[np.int64]) -> float | None:
    sizes = np.bincount(codes)
    if not (sizes == sizes[0]).all():
        return None
    return float(sizes[0] - 1) / float(codes.size - 1)


def encode_superclasses(
    superclasses: Sequence[object] | ArrayLike, n_categories: int
) -> NDArray[np.int64]:
    """Turn superclass labels aligned with the categories into integer codes.

    Labels may be strings, ints or any hashable values compared with ``==``; codes are given in
    order of first appearance, so only the partition of the categories matters.

    Parameters
    ----------
    superclasses:
        One label per category.
    n_categories:
        C, the number of categories the labels must cover.

    Returns
    -------
    numpy.ndarray
        int64 codes of length C, in ``0 .. n_superclasses - 1``.

    Raises
    ------
    SemprobeError
        If the length differs from C, a label is missing (None/NaN) or unhashable, or there are
        fewer than two superclasses (relevance is then undefined).
    """
    labels = _label_list(superclasses)
    if len(labels) != n_categories:
        raise SemprobeError(f"got {len(labels)} superclass labels for {n_categories} categories")
    codes: dict[object, int] = {}
    out = np.empty(n_categories, dtype=np.int64)
    for i, label in enumerate(labels):
        if label is None or (isinstance(label, numbers.Real) and math.isnan(float(label))):
            raise SemprobeError(f"category {i} has no superclass label ({label!r})")
        try:
            out[i] = codes.setdefault(label, len(codes))
        except TypeError:
            raise SemprobeError(f"superclass label {label!r} is not hashable") from None
    if len(codes) < 2:
        raise SemprobeError(
            f"relevance is undefined with fewer than 2 superclasses (got {len(codes)})"
        )
    return out


def chance_level(superclasses: Sequence[object] | ArrayLike) -> float | None:
    """Analytic chance level of the relevance mean.

    Parameters
    ----------
    superclasses:
        One label per category (at least two distinct labels).

    Returns
    -------
    float or None
        ``(s - 1) / (C - 1)`` if every superclass has the same size ``s`` among ``C`` categories,
        None if the sizes differ.
    """
    labels = _label_list(superclasses)
    return _chance(encode_superclasses(labels, len(labels)))


def _neighbour_weights(neighbour_counts: ArrayLike, multiplicity: bool) -> NDArray[np.int64]:
    """Validate a C x C count matrix; zero its diagonal and binarise it unless ``multiplicity``."""
    try:
        counts = np.asarray(neighbour_counts, dtype=np.float64)
    except (TypeError, ValueError):
        raise SemprobeError("neighbour counts must be a numeric C x C matrix") from None
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise SemprobeError(f"neighbour counts must be a square C x C matrix, got {counts.shape}")
    if not np.isfinite(counts).all() or (counts < 0).any() or (counts != np.round(counts)).any():
        raise SemprobeError("neighbour counts must be non-negative integers")
    weights = counts.astype(np.int64)
    # N(c_i) holds only the *other* categories.
    np.fill_diagonal(weights, 0)
    if not multiplicity:
        weights = (weights > 0).astype(np.int64)
    return weights


def _batched_relevance(
    weights: NDArray[np.int64], codes: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-category relevance and mean for each row of ``codes`` (P x C label assignments).

    The observed value and every null value go through this one function, so equal inputs give
    bit-identical results. Numerators are exact integer sums; a block of permutations at a time
    keeps memory bounded.
    """
    n_perm, n_cat = codes.shape
    degree = weights.sum(axis=1)
    connected = degree > 0
    n_connected = int(connected.sum())
    safe_degree = np.where(connected, degree, 1).astype(np.float64)
    per_category = np.zeros((n_perm, n_cat), dtype=np.float64)
    block = max(1, _BLOCK_ELEMENTS // max(1, n_cat * n_cat))
    for start in range(0, n_perm, block):
        chunk = codes[start : start + block]
        same = chunk[:, :, None] == chunk[:, None, :]
        numerator = np.einsum("pij,ij->pi", same, weights, dtype=np.int64)
        per_category[start : start + block] = numerator / safe_degree
    if n_connected == 0:
        return per_category, np.full(n_perm, np.nan)
    return per_category, per_category.sum(axis=1) / n_connected


def relevance(
    neighbour_counts: ArrayLike,
    superclasses: Sequence[object] | ArrayLike,
    multiplicity: bool = False,
) -> RelevanceResult:
    """Semantic relevance of ``W_K`` from its 2-neighbour counts.

    Parameters
    ----------
    neighbour_counts:
        ``C x C`` non-negative integer matrix, e.g. from :func:`semprobe.graph.two_neighbours`;
        entry ``(i, j)`` is the number of features categories ``i`` and ``j`` share. The diagonal
        is ignored.
    superclasses:
        One superclass label per category (strings or ints), at least two distinct.
    multiplicity:
        ``False`` (default): ``N(c_i)`` is a set (counts > 0 become 1). ``True``: each shared
        feature counts once, in numerator and denominator.

    Returns
    -------
    RelevanceResult
        ``total`` (the paper's sum), ``mean`` over non-isolated categories, ``n_isolated``,
        ``n_categories`` and ``per_category``.

    Raises
    ------
    SemprobeError
        On a malformed matrix, labels of the wrong length, or fewer than two superclasses.
    """
    weights = _neighbour_weights(neighbour_counts, multiplicity)
    codes = encode_superclasses(superclasses, weights.shape[0])
    return _result(weights, codes)


def _result(weights: NDArray[np.int64], codes: NDArray[np.int64]) -> RelevanceResult:
    per_category, means = _batched_relevance(weights, codes[None, :])
    isolated = weights.sum(axis=1) == 0
    return RelevanceResult(
        total=float(per_category[0].sum()),
        mean=float(means[0]),
        n_isolated=int(isolated.sum()),
        n_categories=int(weights.shape[0]),
        per_category=per_category[0],
        isolated=isolated,
    )


def _check_permutations(n_permutations: object, seed: object) -> tuple[int, int]:
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, numbers.Integral):
        raise SemprobeError(f"n_permutations must be an integer, got {n_permutations!r}")
    if n_permutations < 1:
        raise SemprobeError(f"n_permutations must be at least 1, got {n_permutations}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise SemprobeError(f"seed must be a non-negative integer, got {seed!r}")
    return int(n_permutations), int(seed)


def _permuted_codes(codes: NDArray[np.int64], n_permutations: int, seed: int) -> NDArray[np.int64]:
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
    n_perm, seed_ = _check_permutations(n_permutations, seed)
    weights = _neighbour_weights(neighbour_counts, multiplicity)
    codes = encode_superclasses(superclasses, weights.shape[0])
    return _batched_relevance(weights, _permuted_codes(codes, n_perm, seed_))[1]


def _test(
    weights: NDArray[np.int64],
    codes: NDArray[np.int64],
    permuted: NDArray[np.int64],
    seed: int,
    k: int | None,
    rule: str | None,
    multiplicity: bool,
) -> RelevanceTest:
    observed = _result(weights, codes)
    null = _batched_relevance(weights, permuted)[1]
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
    chance = _chance(codes)
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
    n_perm, seed_ = _check_permutations(n_permutations, seed)
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
    weights = _neighbour_weights(counts, multiplicity)
    codes = encode_superclasses(superclasses, weights.shape[0])
    permuted = _permuted_codes(codes, n_perm, seed_)
    return _test(weights, codes, permuted, seed_, graph_k, graph_rule, multiplicity)


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
    n_perm, seed_ = _check_permutations(n_permutations, seed)
    array = check_weights(weights)
    k_list = list(np.asarray(ks, dtype=object).reshape(-1))
    if not k_list:
        raise SemprobeError("ks must contain at least one K")
    codes = encode_superclasses(superclasses, array.shape[0])
    permuted = _permuted_codes(codes, n_perm, seed_)
    rows: list[dict[str, Any]] = []
    for k in k_list:
        graph = top_k_graph(array, k, rule=rule)
        counts = two_neighbours(graph, multiplicity=multiplicity)
        test = _test(
            _neighbour_weights(counts, multiplicity),
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
