"""Quantiles read off fine histograms, made consistent with the exact mean, minimum and maximum.

Quantiles need every value; a streamed pass keeps a histogram per (tau, simplex) and per
(tau, class) instead, in the bins of :mod:`semprobe.entropy.bins` (logarithmic near 0), and reads
the requested rank off it with linear interpolation inside its bin. The estimate and the exact
quantile (the inverted-CDF one, ``x_(k)`` with ``k = ceil(p * n)``, numpy's
``method="inverted_cdf"``) lie in the same bin, so they differ by less than its width.

Every estimate is then projected onto the values the exact quantile can take given the
statistics reported beside it: ``[min, max]``, and, for non-negative values with mean ``m``,
``(n m - (n - k) max) / k <= x_(k) <= (n m - (k - 1) min) / (n - k + 1)`` (at least ``n - k + 1``
values are ``>= x_(k)`` and ``k`` are ``<= x_(k)``). The exact quantile lies in that interval, so
the projection never moves the estimate away from it, and the table can never contradict itself
(a median above twice the mean of non-negative values, say). Accuracy: docs/entropy.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semprobe.errors import SemprobeError

DEFAULT_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)


def quantile_name(p: float) -> str:
    """The column of quantile ``p``: ``q05`` for 0.05, ``q12_5`` for 0.125."""
    pct = p * 100.0
    if abs(pct - round(pct)) < 1e-9:
        return f"q{round(pct):02d}"
    return "q" + f"{pct:g}".replace(".", "_")


def check_quantiles(quantiles: Sequence[float]) -> list[float]:
    """``quantiles`` as floats, or an error unless each lies in (0, 1) and their columns differ."""
    probs = [float(p) for p in quantiles]
    for p in probs:
        if not 0.0 < p < 1.0:
            raise SemprobeError(f"quantiles must lie in (0, 1), got {p!r}")
    if len({quantile_name(p) for p in probs}) != len(probs):
        raise SemprobeError(f"quantiles must be distinct, got {list(quantiles)!r}")
    return probs


def ranks(n: np.ndarray, p: float) -> np.ndarray:
    """The 1-based rank ``k = ceil(p * n)`` of the inverted-CDF quantile (at least 1), int64."""
    return np.maximum(np.ceil(p * np.asarray(n, dtype=np.float64)), 1.0).astype(np.int64)


def fine_quantiles(
    counts: np.ndarray, n: np.ndarray, probs: Sequence[float], edges: np.ndarray
) -> np.ndarray:
    """Quantile estimates ``(R, len(probs))`` from ``(R, bins)`` histogram counts.

    Parameters
    ----------
    counts:
        Counts per row (a simplex, a class) and bin.
    n:
        ``(R,)`` values counted per row, ``counts.sum(axis=1)`` (rows with none give 0).
    probs:
        Probabilities in (0, 1).
    edges:
        ``bins + 1`` increasing bin edges.

    Examples
    --------
    >>> import numpy as np
    >>> counts = np.array([[0, 3, 1, 0]])  # three values in [1, 2), one in [2, 3)
    >>> fine_quantiles(counts, np.array([4]), [0.5, 0.95], np.arange(5.0)).round(3).tolist()
    [[1.5, 2.5]]
    """
    rows, bins = counts.shape
    cum = np.cumsum(counts, axis=1, dtype=np.int64)
    # One sorted array for all rows: row r's cumulative counts offset by r * (total + 1), so
    # that a single searchsorted finds, for every row and rank, the first bin reaching it.
    step = int(cum[:, -1].max(initial=0)) + 1
    offsets = np.arange(rows, dtype=np.int64) * step
    flat = (cum + offsets[:, None]).ravel()
    out = np.empty((rows, len(probs)))
    index = np.arange(rows)
    for j, p in enumerate(probs):
        k = ranks(n, p)
        # The first bin whose cumulative count reaches rank k holds the exact value x_(k).
        b = np.minimum(np.searchsorted(flat, k + offsets) - index * bins, bins - 1)
        before = np.where(b > 0, cum[index, np.maximum(b - 1, 0)], 0)
        inside = np.maximum(counts[index, b], 1)
        # Place x_(k) at the middle of its share of the bin: the j-th of c values at (j - 1/2)/c.
        frac = np.clip((k - before - 0.5) / inside, 0.0, 1.0)
        out[:, j] = edges[b] + frac * (edges[b + 1] - edges[b])
    return out


def consistent_quantiles(
    estimates: np.ndarray,
    n: np.ndarray,
    probs: Sequence[float],
    mean: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
) -> np.ndarray:
    """Project ``(R, len(probs))`` quantile estimates onto what mean, min and max allow.

    ``n``, ``mean``, ``low`` and ``high`` are per row; the values are non-negative.

    Examples
    --------
    >>> import numpy as np
    >>> # 100 values >= 0 with mean 1e-7: at least 51 of them are >= the median, so it is at
    >>> # most 100 * 1e-7 / 51; and q95 is at most the maximum, 1e-6.
    >>> est = np.array([[5e-4, 9.5e-3]])
    >>> out = consistent_quantiles(est, np.array([100]), [0.5, 0.95], np.array([1e-7]),
    ...                            np.array([0.0]), np.array([1e-6]))
    >>> [float(f"{v:.3g}") for v in out[0]]
    [1.96e-07, 1e-06]
    """
    out = np.empty_like(estimates)
    n_f = n.astype(np.float64)
    total = n_f * mean
    for j, p in enumerate(probs):
        k = ranks(n, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            below = (total - (n_f - k) * high) / k
            above = (total - (k - 1.0) * low) / (n_f - k + 1.0)
        lower = np.fmax(low, below)
        upper = np.fmin(high, above)
        out[:, j] = np.minimum(np.maximum(estimates[:, j], lower), upper)
    # Rounding of the mean can cross the two bounds by a few ulps; quantiles never decrease.
    return np.maximum.accumulate(np.clip(out, low[:, None], high[:, None]), axis=1)
