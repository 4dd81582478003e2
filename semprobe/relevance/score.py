"""The relevance of one feature-category graph: ``Relevance(W_K)`` and its chance level."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from semprobe.errors import SemprobeError
from semprobe.graph import (
    frozen_copy,
)

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


def chance_of_codes(codes: NDArray[np.int64]) -> float | None:
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
    return chance_of_codes(encode_superclasses(labels, len(labels)))


def neighbour_weights(neighbour_counts: ArrayLike, multiplicity: bool) -> NDArray[np.int64]:
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


def batched_relevance(
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
    weights = neighbour_weights(neighbour_counts, multiplicity)
    codes = encode_superclasses(superclasses, weights.shape[0])
    return relevance_result(weights, codes)


def relevance_result(weights: NDArray[np.int64], codes: NDArray[np.int64]) -> RelevanceResult:
    per_category, means = batched_relevance(weights, codes[None, :])
    isolated = weights.sum(axis=1) == 0
    return RelevanceResult(
        total=float(per_category[0].sum()),
        mean=float(means[0]),
        n_isolated=int(isolated.sum()),
        n_categories=int(weights.shape[0]),
        per_category=per_category[0],
        isolated=isolated,
    )
