"""The entry point: entropy statistics of cached SEM logits at many temperatures, in one pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from semprobe.entropy.arguments import check_request
from semprobe.entropy.quantiles import DEFAULT_QUANTILES
from semprobe.entropy.report import EntropyReport
from semprobe.entropy.runner import stream
from semprobe.entropy.tables import build_report


def entropy_report(
    logits: np.ndarray,
    num_simplices: int,
    vocab: int,
    taus: Sequence[float] | float,
    labels: Sequence[int] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    superclass_of: Sequence[str] | Mapping[Any, str] | None = None,
    bins: int = 64,
    eps: float = 0.05,
    chunk_rows: int | None = None,
    progress: bool = False,
    *,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    quantile_bins: int = 256,
    num_threads: int | None = None,
    device: str | torch.device | None = None,
) -> EntropyReport:
    """Entropy statistics of SEM outputs at several temperatures, in one streamed pass.

    The logits are read once, ``chunk_rows`` rows at a time, and every tau is computed from the
    same chunk; memory is bounded by the chunk, never ``N x L x V``.

    Parameters
    ----------
    logits:
        ``(N, L*V)`` pre-softmax SEM logits: ``np.ndarray`` or ``np.memmap`` (e.g.
        ``np.load(path, mmap_mode="r")``), float16 or float32, finite.
    num_simplices, vocab:
        L and V (V >= 2).
    taus:
        One temperature or a sequence of distinct temperatures, each > 0.
    labels:
        Optional ``(N,)`` class indices ``0 .. C-1``, for the per-class table.
    class_names:
        Optional names of the classes (index = label), shown in the per-class table.
    superclass_of:
        Optional superclass of every class: a sequence indexed by label, or a mapping from class
        name or label to superclass. Needs ``labels``.
    bins:
        Number of equal bins of the overall histogram on ``[0, ln V]``.
    eps:
        Tolerance (nats) of the near one-hot / two-hot / uniform fractions.
    chunk_rows:
        Rows read at once (memory is proportional to it); default :func:`default_chunk_rows`.
    progress:
        Show a tqdm progress bar (rows).
    quantiles:
        Probabilities in (0, 1) of the per-simplex quantiles; column ``q05`` is 0.05.
    quantile_bins:
        Bins of the per-simplex histograms the quantiles are read from: they are within
        ``ln V / quantile_bins`` of the exact values.
    num_threads:
        CPU worker threads; default ``torch.get_num_threads()``.
    device:
        Torch device for the computation, default CPU; e.g. ``"cuda"``.

    Returns
    -------
    EntropyReport
        The tables described in :class:`EntropyReport`.

    Raises
    ------
    SemprobeError
        For a bad tau, shape, label, parameter or non-finite logits, naming the value.

    Examples
    --------
    >>> import numpy as np
    >>> logits = np.zeros((4, 3 * 2), dtype=np.float32)  # 4 samples, L = 3 simplices of V = 2
    >>> logits[:, 0] = 50.0  # simplex 0 is one-hot, the others uniform
    >>> report = entropy_report(logits, 3, 2, [0.5, 1.0], num_threads=1)
    >>> report.per_simplex["mean"].round(4).tolist()
    [0.0, 0.6931, 0.6931, 0.0, 0.6931, 0.6931]
    >>> report.summary[["tau", "frac_one_hot", "frac_uniform"]].round(4).to_numpy().tolist()
    [[0.5, 0.3333, 0.6667], [1.0, 0.3333, 0.6667]]
    """
    request = check_request(
        logits,
        num_simplices,
        vocab,
        taus,
        labels,
        class_names,
        superclass_of,
        bins=bins,
        eps=eps,
        chunk_rows=chunk_rows,
        quantiles=quantiles,
        quantile_bins=quantile_bins,
        num_threads=num_threads,
        device=device,
    )
    total, fine, by_class = stream(
        request.array,
        request.spec,
        request.taus,
        request.labels,
        request.chunk_rows,
        request.workers,
        progress,
    )
    return build_report(
        total,
        fine,
        by_class,
        request.taus,
        request.probs,
        request.labels,
        class_names,
        superclass_of,
    )
