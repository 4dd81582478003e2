"""Bootstrap resamples and percentile intervals: the uncertainty of a statistic of the data.

The nonparametric bootstrap (Efron and Tibshirani, *An Introduction to the Bootstrap*, 1993):
draw the images again with replacement, recompute the statistic on each resample, and read a
``confidence`` interval off the replicates' percentiles (their chapter 13). Resample ``b`` of a
seed has its own generator, ``default_rng([seed, STREAM, b])``, so the first 50 resamples of a
run with 200 are those of a run with 50, and two models measured on the same images are resampled
with the same indices: their difference is a *paired* bootstrap (the image-to-image variation
they share cancels).

Examples
--------
>>> import numpy as np
>>> rows = stratified_resample(np.array([0, 0, 0, 1, 1]), resample_rng(0, 0))
>>> len(rows), sorted(set(np.array([0, 0, 0, 1, 1])[rows].tolist()))
(5, [0, 1])
>>> percentile_interval(np.arange(101.0), 0.5)
(25.0, 75.0, 101)
>>> established(0.01, 0.2), established(-0.01, 0.2)
(True, False)
"""

from __future__ import annotations

import hashlib
import math
import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

from semprobe.errors import SemprobeError

#: Separates the resample generators from the other seeded streams (permutation nulls, splits).
STREAM = 0xB007


def check_resamples(n: object, what: str = "bootstrap") -> int:
    """``n`` as the number of resamples: an integer >= 1 (``bool`` refused)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or int(n) < 1:
        raise SemprobeError(f"{what} must be a number of resamples >= 1, got {n!r}")
    return int(n)


def check_confidence(confidence: object) -> float:
    """``confidence`` as a float strictly between 0 and 1."""
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise SemprobeError(f"confidence must be a number in (0, 1), got {confidence!r}")
    value = float(confidence)
    if not 0.0 < value < 1.0:  # also refuses nan
        raise SemprobeError(f"confidence must be a number in (0, 1), got {confidence!r}")
    return value


def resample_rng(seed: int, b: int) -> np.random.Generator:
    """The generator of resample ``b`` of ``seed``."""
    return np.random.default_rng([int(seed), STREAM, int(b)])


def stratified_resample(labels: ArrayLike, rng: np.random.Generator) -> NDArray[np.int64]:
    """Row indices of a class-stratified resample: each class's rows, drawn with replacement.

    Every class keeps its count (so a probe refitted on the resample has the same classes).

    Parameters
    ----------
    labels:
        ``(n,)`` class labels.
    rng:
        The resample's generator (:func:`resample_rng`).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` sorted int64 row indices (sorted: memory-mapped rows are then read in order).
    """
    y = np.asarray(labels).reshape(-1)
    classes, encoded = np.unique(y, return_inverse=True)
    order = np.argsort(encoded, kind="stable")
    counts = np.bincount(encoded, minlength=len(classes))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # One draw per row, in [0, count of its class): a vectorised per-class resample.
    draws = np.floor(rng.random(len(y)) * np.repeat(counts, counts)).astype(np.int64)
    rows = order[np.repeat(starts, counts) + draws]
    return np.sort(rows).astype(np.int64)


def plain_resample(n: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """``(n,)`` sorted int64 row indices drawn from ``range(n)`` with replacement."""
    return np.sort(rng.integers(0, n, size=n)).astype(np.int64)


def percentile_interval(values: ArrayLike, confidence: float) -> tuple[float, float, int]:
    """The percentile interval of bootstrap replicates.

    Parameters
    ----------
    values:
        The replicates; NaN ones (a statistic undefined on that resample) are left out.
    confidence:
        In ``(0, 1)``; the interval runs from the ``(1 - confidence) / 2`` to the
        ``(1 + confidence) / 2`` quantile (linear interpolation, numpy's default).

    Returns
    -------
    tuple
        ``(low, high, n)`` with ``n`` the finite replicates; ``(nan, nan, 0)`` if there are none.
    """
    level = check_confidence(confidence)
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return math.nan, math.nan, 0
    low, high = np.quantile(finite, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high), int(finite.size)


def established(low: float, high: float) -> bool:
    """Whether an interval of a difference excludes 0 (a NaN bound never establishes one)."""
    return bool(low > 0 or high < 0)


def labels_digest(*labels: ArrayLike) -> str:
    """A short digest of the label arrays resamples are drawn from (paired resamples need equal)."""
    digest = hashlib.sha256()
    for array in labels:
        a = np.ascontiguousarray(np.asarray(array, dtype=np.int64))
        digest.update(str(a.shape).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()[:16]


def bootstrap_mean(
    values: ArrayLike, n_resamples: int, seed: int, confidence: float
) -> tuple[float, float]:
    """The percentile interval of the mean of per-image ``values`` over resampled images.

    The cheap bootstrap of an accuracy: the per-image hits are fixed, only the test images are
    drawn again (resample ``b`` has the indices every other statistic of the same images and
    seed gets).

    Parameters
    ----------
    values:
        ``(n,)`` per-image values, e.g. 0/1 hits.
    n_resamples, seed, confidence:
        Resamples (>= 1), their seed, the interval's confidence in ``(0, 1)``.

    Returns
    -------
    tuple
        ``(low, high)``.

    Examples
    --------
    >>> low, high = bootstrap_mean(np.arange(100) < 30, 200, 0, 0.95)
    >>> bool(0.2 < low < 0.3 < high <= 0.4)
    True
    """
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    n = check_resamples(n_resamples)
    if array.size == 0:
        raise SemprobeError("a bootstrap of a mean needs at least one value")
    means = [array[plain_resample(array.size, resample_rng(seed, b))].mean() for b in range(n)]
    low, high, _ = percentile_interval(means, confidence)
    return low, high
