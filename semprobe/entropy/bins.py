"""The fine bins the quantiles are read from: logarithmic near 0, equal-width above.

Entropies of sharp simplices sit many orders of magnitude below ``ln V`` (1e-7 nats at tau 0.1
is common), so equal bins on ``[0, ln V]`` put every quantile of such a simplex in the first bin.
Here the value axis is ``u = H * quantile_bins / ln V`` (so one equal bin is one unit of u):

* ``u >= 8``: equal bins of width 1, i.e. ``ln V / quantile_bins`` nats;
* ``2**(3 - OCTAVES) <= u < 8``: ``OCTAVES`` octaves, each split into 8 equal sub-bins, so a bin
  is at most 1/8 of its own lower edge wide (read off the float32 bit pattern of u, which is
  exactly this log-linear layout: exponent and top three mantissa bits);
* ``u < 2**(3 - OCTAVES)`` (below ~7e-14 nats for V = 13) merges into the first bin.

Where the two regions meet, a log bin is as wide as an equal one (1/8 of 8), so a bin is never
wider than ``min(ln V / quantile_bins, max(H / 8, floor))`` nats. The edges of every bin are
integers in u, or sums of powers of two, so an equal-width coarse histogram whose bin count
divides ``quantile_bins`` is a sum of fine bins.

The sizes are a measured compromise: the per-simplex histograms are counted for every entropy,
and they stay fast only while one tau's counts (``bins * L`` int32) fit in the last-level cache
(568 bins x L = 5,000 is 11 MB; 16 sub-bins per octave doubled the analysis time there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

# Sub-bins per octave (2**3: three mantissa bits) and octaves of the logarithmic region.
SUB_BITS = 3
SUB_BINS = 1 << SUB_BITS
OCTAVES = 40
_SHIFT = 23 - SUB_BITS  # float32 has 23 mantissa bits
# The code of the lowest logarithmic edge, 2**(4 - OCTAVES): exponent field 127 + 4 - OCTAVES.
_BASE = (127 + SUB_BITS - OCTAVES) << SUB_BITS
LOG_BINS = OCTAVES * SUB_BINS


@dataclass(frozen=True)
class BinLayout:
    """The fine bins of an analysis with ``quantile_bins`` equal bins on ``[0, ln V]``.

    Examples
    --------
    >>> import math, torch
    >>> layout = BinLayout(256, math.log(13))
    >>> layout.count
    568
    >>> h = torch.tensor([0.0, 1e-7, 1e-3, 1.0, math.log(13)])
    >>> codes = layout.codes(h, torch.empty(5, dtype=torch.int32), torch.empty(5),
    ...                      torch.empty(5, dtype=torch.int32))
    >>> edges = layout.edges()
    >>> [bool(edges[c] <= v < edges[c + 1] or c == layout.count - 1) for c, v in
    ...  zip(codes.tolist(), h.tolist())]
    [True, True, True, True, True]
    >>> round(float(edges[codes[1] + 1] / edges[codes[1]]), 4) <= 1 + 1 / 8  # 1e-7: a log bin
    True
    """

    quantile_bins: int
    log_v: float

    @property
    def scale(self) -> float:
        """``quantile_bins / ln V``: nats to units of u."""
        return self.quantile_bins / self.log_v

    @property
    def count(self) -> int:
        """Number of fine bins."""
        return LOG_BINS + max(self.quantile_bins - SUB_BINS, 0)

    def codes(self, ent: Tensor, out: Tensor, scratch: Tensor, int_scratch: Tensor) -> Tensor:
        """Write the bin of every entropy of the float32 ``ent`` into ``out`` and return it.

        ``out`` (int32 or int64), ``scratch`` (float32) and ``int_scratch`` (int32) have
        ``ent``'s shape; nothing is allocated.
        """
        u = torch.mul(ent, self.scale, out=scratch)
        # Equal bins above u = 8: the integer part (float -> int truncates: floor for u >= 0).
        linear = int_scratch
        linear.copy_(u)
        linear.sub_(SUB_BINS - 1).clamp_(0, max(self.quantile_bins - SUB_BINS, 0))
        # Log-linear bins below: the float's exponent and top mantissa bits, in order of value
        # (non-negative floats sort like their bit patterns; -0.0 and 0.0 go to the first bin).
        torch.bitwise_right_shift(u.view(torch.int32), _SHIFT, out=out)
        out.sub_(_BASE).clamp_(0, LOG_BINS - 1).add_(linear)
        return out

    def _u_edges(self) -> np.ndarray:
        """The ``count + 1`` bin edges in units of u (exact binary fractions)."""
        codes = (np.arange(LOG_BINS, dtype=np.int64) + _BASE) << _SHIFT
        log_edges = codes.astype(np.int32).view(np.float32).astype(np.float64)
        log_edges[0] = 0.0  # everything below the lowest edge is counted in the first bin
        top = max(self.quantile_bins - SUB_BINS, 0)
        linear = SUB_BINS + np.arange(top + 1, dtype=np.float64)
        # With fewer equal bins than sub-bins the log region ends at u = quantile_bins.
        return np.minimum(np.concatenate([log_edges, linear]), float(self.quantile_bins))

    def edges(self) -> np.ndarray:
        """The ``count + 1`` bin edges in nats (float64); the last is ``ln V``."""
        edges = np.minimum(self._u_edges() / self.scale, self.log_v)
        edges[-1] = self.log_v
        return edges

    def coarse_map(self, bins: int) -> np.ndarray:
        """For each fine bin, its bin among ``bins`` equal bins on ``[0, ln V]``.

        ``bins`` must divide ``quantile_bins``: then every coarse edge is a fine one.
        """
        per = self.quantile_bins // bins
        lower = self._u_edges()[:-1]
        return np.minimum(np.floor(lower / per).astype(np.int64), bins - 1)

    def bound(self, value: float) -> float:
        """The width of the bin holding ``value`` nats: the most a quantile there can be off."""
        edges = self.edges()
        k = min(int(np.searchsorted(edges, value, side="right")) - 1, self.count - 1)
        return float(edges[max(k, 0) + 1] - edges[max(k, 0)])


def floor_nats(log_v: float, quantile_bins: int) -> float:
    """The lowest log-bin edge in nats: below it, values share the first bin."""
    return math.ldexp(1.0, SUB_BITS - OCTAVES) * log_v / quantile_bins
