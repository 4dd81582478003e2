"""Per-feature statistics of ``X`` from one pass: the centring and the solver's first step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from semprobe.probe.errors import ProbeError
from semprobe.probe.stream import RowStream


@dataclass
class FeatureStats:
    """Per-feature mean and the mean squared norm of the centred rows.

    Attributes
    ----------
    mean:
        ``(n_features,)`` float32 column means (zeros when not centring).
    trace:
        ``mean_i ||x_i - mean||^2``, the trace of the feature covariance: a bound on its largest
        eigenvalue that needs no extra pass.
    """

    mean: Tensor
    trace: float


def feature_stats(stream: RowStream, center: bool) -> FeatureStats:
    """One pass: column means (float64 accumulation) and ``mean_i ||x_i - mu||^2``; checks NaN.

    Parameters
    ----------
    stream:
        The rows to summarise.
    center:
        Whether the features will be centred; if not, ``mean`` is zero and ``trace`` is the mean
        squared norm of the raw rows.

    Returns
    -------
    FeatureStats
        The statistics; a :class:`ProbeError` names the rows if ``X`` holds NaN or infinity.

    Examples
    --------
    >>> import numpy as np, torch
    >>> X = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    >>> stats = feature_stats(RowStream(X, None, 1, torch.device("cpu")), center=True)
    >>> stats.mean.tolist(), stats.trace
    ([1.0, 2.0], 2.0)
    """
    total = torch.zeros(stream.n_features, dtype=torch.float64, device=stream.device)
    sq = torch.zeros((), dtype=torch.float64, device=stream.device)
    for start, _, block in stream:
        # Matrix-vector product and dot product: BLAS sweeps the block several times faster than
        # reductions do. Per block in float32, across blocks in float64.
        ones = torch.ones(1, block.shape[0], dtype=block.dtype, device=block.device)
        col_sums = (ones @ block).reshape(-1)
        # A NaN or infinity anywhere in the block reaches its column sums, so this costs no
        # extra sweep over the block.
        if not bool(torch.isfinite(col_sums).all()):
            raise ProbeError(
                f"X contains NaN or infinity in rows {start}..{start + block.shape[0] - 1}"
            )
        total += col_sums.double()
        flat = block.reshape(-1)
        sq += torch.dot(flat, flat).double()
    n = max(stream.n, 1)
    mean = total / n
    if not center:
        return FeatureStats(torch.zeros_like(mean, dtype=torch.float32), float(sq) / n)
    trace = float(sq) / n - float((mean**2).sum())
    return FeatureStats(mean.float(), max(trace, 0.0))
