"""Rows of one representation of cached features, read block by block.

Every protocol reads the feature cache the same way: the backbone features, the pre-softmax SEM
logits, or the SEM output ``softmax(z / tau)`` computed from the logits one block at a time, so
that no temperature is ever stored and a 50,000 x 65,000 cache never sits in memory. Memory maps
are read with plain file reads (as the probe's row stream does): pages touched through a mapping
would stay in the resident set.

:func:`column_stats` and :func:`linear_scores` let a probe fitted on standardised features
(:func:`semprobe.analysis.probe_inputs`) score rows of another temperature or another dataset
without writing a standardised copy of them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from semprobe.errors import SemprobeError
from semprobe.features import FeatureSet
from semprobe.memmap import mapped_rows
from semprobe.probe import top_k_accuracy
from semprobe.probe.stream import read_exact
from semprobe.sem import sem_softmax
from semprobe.validation import check_tau

REPRESENTATIONS = ("backbone", "logits", "sem")
# Bytes of one block read at a time (before conversion to float32).
BLOCK_BYTES = 128 * 1024**2


def block_rows(width: int, budget: int = BLOCK_BYTES, cap: int = 8192) -> int:
    """Rows per block so that a float32 block of ``width`` columns takes about ``budget`` bytes."""
    return int(max(16, min(cap, budget // max(1, 4 * width))))


class FeatureRows:
    """One representation of a :class:`~semprobe.features.FeatureSet`, optionally a row subset.

    Use as a context manager (it keeps the cache file open) and call :meth:`read`.

    Parameters
    ----------
    features:
        The cached features.
    representation:
        ``backbone`` (f_base), ``logits`` (the embedder's pre-softmax output) or ``sem``.
    tau:
        Temperature of ``sem``; ignored otherwise.
    rows:
        Sorted row indices to expose (e.g. a validation split), or None for every row.

    Examples
    --------
    >>> import numpy as np
    >>> rows = FeatureRows.from_array(np.arange(6.0).reshape(3, 2))
    >>> with rows:
    ...     rows.read(1, 3).tolist()
    [[2.0, 3.0], [4.0, 5.0]]
    """

    def __init__(
        self,
        features: FeatureSet | None,
        representation: str,
        tau: float | None = None,
        rows: np.ndarray | None = None,
        array: Any = None,
    ) -> None:
        if representation not in REPRESENTATIONS:
            raise SemprobeError(
                f"unknown representation {representation!r}; choose one of "
                f"{', '.join(REPRESENTATIONS)}"
            )
        self.representation = representation
        self.tau = check_tau(tau) if representation == "sem" else None
        self.fs = features
        if array is not None:
            self.source = array
        elif features is None:
            raise SemprobeError("FeatureRows needs a feature set or an array")
        elif representation == "backbone":
            self.source = features.features
        else:
            self.source = features.require_logits(f"the {representation} representation")
        if getattr(self.source, "ndim", None) != 2:
            raise SemprobeError(f"features must be 2-D, got shape {np.shape(self.source)}")
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._layout = mapped_rows(self.source)
        self._stack: contextlib.ExitStack | None = None
        self._fh: Any = None
        self._depth = 0

    @classmethod
    def from_array(cls, array: Any, rows: np.ndarray | None = None) -> FeatureRows:
        """Rows of a plain 2-D array or memory map, as they are."""
        return cls(None, "backbone", rows=rows, array=array)

    @property
    def shape(self) -> tuple[int, int]:
        n = self.source.shape[0] if self.rows is None else len(self.rows)
        return int(n), int(self.source.shape[1])

    def subset(self, rows: np.ndarray) -> FeatureRows:
        """The same representation restricted to ``rows`` (indices into this view's rows)."""
        base = np.asarray(rows, dtype=np.int64)
        chosen = base if self.rows is None else self.rows[base]
        return FeatureRows(self.fs, self.representation, self.tau, chosen, self._array())

    def _array(self) -> Any:
        return self.source if self.fs is None else None

    def __enter__(self) -> FeatureRows:
        self._depth += 1
        if self._stack is None:
            self._stack = contextlib.ExitStack()
            if self._layout is not None:
                self._fh = self._stack.enter_context(open(self._layout.filename, "rb", buffering=0))
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._stack is not None:
            self._stack.close()
            self._stack, self._fh = None, None

    def _raw(self, first: int, last: int) -> np.ndarray:
        """Stored rows ``first:last`` of the source, in its dtype."""
        if self._layout is None or self._fh is None:
            return np.asarray(self.source[first:last])
        out = np.empty((last - first, self.source.shape[1]), dtype=self.source.dtype)
        read_exact(self._fh, self._layout.file_offset + first * self._layout.row_bytes, out)
        return out

    def _stored(self, start: int, stop: int) -> np.ndarray:
        if self.rows is None:
            return self._raw(start, stop)
        index = self.rows[start:stop]
        if not len(index):
            return np.empty((0, self.source.shape[1]), dtype=self.source.dtype)
        # Sorted rows: read spans of at most a few blocks and pick the rows in each.
        out = np.empty((len(index), self.source.shape[1]), dtype=self.source.dtype)
        span = max(len(index), block_rows(self.source.shape[1]))
        done = 0
        while done < len(index):
            first = int(index[done])
            upto = int(np.searchsorted(index, first + span, side="left"))
            chunk = self._raw(first, int(index[upto - 1]) + 1)
            out[done:upto] = chunk[index[done:upto] - first]
            done = upto
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of this view as a float32 ``(stop - start, width)`` array."""
        block = np.asarray(self._stored(start, stop), dtype=np.float32)
        if self.representation != "sem":
            return block
        assert self.fs is not None and self.tau is not None
        probs = sem_softmax(torch.from_numpy(block), self.fs.num_simplices, self.fs.vocab, self.tau)
        return probs.numpy()

    def blocks(self, rows_per_block: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, block)`` over every row (opens the file if it is not open)."""
        n, width = self.shape
        step = rows_per_block or block_rows(width)
        with contextlib.ExitStack() as stack:
            if self._stack is None:
                stack.enter_context(self)
            for start in range(0, n, step):
                stop = min(n, start + step)
                yield start, stop, self.read(start, stop)


def column_stats(rows: FeatureRows) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and standard deviation (+1e-6), accumulated in float64, block by block.

    The standardisation :func:`semprobe.analysis.probe_inputs` applies, so that a probe fitted on
    its output can score raw rows: ``(x - mean) / std``.

    Returns
    -------
    (np.ndarray, np.ndarray)
        float32 ``(width,)`` mean and std.
    """
    n, width = rows.shape
    total = np.zeros(width, dtype=np.float64)
    squares = np.zeros(width, dtype=np.float64)
    for _, _, block in rows.blocks():
        wide = block.astype(np.float64)
        total += wide.sum(0)
        squares += (wide * wide).sum(0)
    mean = total / max(n, 1)
    std = np.sqrt(np.maximum(squares / max(n, 1) - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32) + np.float32(1e-6)


def linear_scores(
    rows: FeatureRows,
    coef: np.ndarray,
    intercept: np.ndarray,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Class scores ``((x - mean) / std) @ coef.T + intercept`` of every row, block by block.

    The standardisation is folded into the weights (``coef / std``), so no standardised copy of
    the rows is made.

    Returns
    -------
    np.ndarray
        ``(n, n_classes)`` float32.
    """
    weights = np.asarray(coef, dtype=np.float64)
    bias = np.asarray(intercept, dtype=np.float64)
    if std is not None:
        weights = weights / np.asarray(std, dtype=np.float64)
    if mean is not None:
        bias = bias - weights @ np.asarray(mean, dtype=np.float64)
    dev = torch.device(device)
    w = torch.from_numpy(weights.astype(np.float32)).to(dev)
    b = torch.from_numpy(bias.astype(np.float32)).to(dev)
    out = np.empty((rows.shape[0], w.shape[0]), dtype=np.float32)
    for start, stop, block in rows.blocks():
        out[start:stop] = torch.addmm(b, torch.from_numpy(block).to(dev), w.T).cpu().numpy()
    if not np.isfinite(out).all():
        raise SemprobeError("features contain NaN or infinity: the probe's scores are not finite")
    return out


def label_columns(probe: Any, labels: np.ndarray) -> np.ndarray:
    """Each label's column in the probe's scores, -1 for a class it never saw."""
    classes = np.asarray(probe.classes_)
    pos = np.clip(np.searchsorted(classes, labels), 0, len(classes) - 1)
    return np.where(classes[pos] == labels, pos, -1)


def probe_scores(probe: Any, x: Any) -> np.ndarray:
    """``(n, n_classes)`` scores of a fitted probe (two classes: ``[0, difference]``, which ranks
    them as the probe's two scores do)."""
    scores = np.asarray(probe.decision_function(x))
    if scores.ndim == 1:
        scores = np.stack([np.zeros_like(scores), scores], axis=1)
    return scores


def accuracies(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1, top-5 and mean per-class accuracy of column-index ``labels`` under ``scores``.

    Ties follow :func:`semprobe.probe.top_k_accuracy` (the probe's one rule: a row is a hit when
    fewer than k classes score strictly higher); a label of -1 (a class the scores lack) is a
    miss. The mean per-class accuracy averages the top-1 accuracy of every class present.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        return {"top1": math.nan, "top5": math.nan, "mean_per_class": math.nan}
    per_class = [
        top_k_accuracy(labels[labels == c], scores[labels == c], 1)
        for c in np.unique(labels[labels >= 0])
    ]
    return {
        "top1": top_k_accuracy(labels, scores, 1),
        "top5": top_k_accuracy(labels, scores, min(5, scores.shape[1])),
        "mean_per_class": float(np.mean(per_class)) if per_class else 0.0,
    }
