"""Per-simplex quantiles, read off per-simplex histograms of the entropies.

Quantiles need every value; a streamed pass keeps a histogram of ``quantile_bins`` equal bins on
``[0, ln V]`` per (tau, simplex) instead and interpolates linearly inside the bin that holds the
requested rank (accuracy: docs/entropy.md).
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


def fine_quantiles(fine: np.ndarray, n: int, probs: Sequence[float], width: float) -> np.ndarray:
    """Per-simplex quantile estimates ``(L, len(probs))`` from ``(L, bins)`` histogram counts.

    ``n`` is the number of samples counted per simplex and ``width`` the width of a bin.
    """
    counts = fine.astype(np.float64)
    cum = np.cumsum(counts, axis=1)
    out = np.empty((counts.shape[0], len(probs)))
    rows = np.arange(counts.shape[0])
    last = counts.shape[1] - 1
    for j, p in enumerate(probs):
        target = p * n
        # The first bin whose cumulative count reaches the target rank holds the exact value.
        k = np.minimum((cum < target).sum(axis=1), last)
        before = np.where(k > 0, cum[rows, np.maximum(k - 1, 0)], 0.0)
        inside = np.maximum(counts[rows, k], 1.0)
        out[:, j] = (k + np.clip((target - before) / inside, 0.0, 1.0)) * width
    return out
