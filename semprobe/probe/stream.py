"""Blocks of rows of ``X`` as float32 tensors, read from memory, a sparse matrix or a file.

Every pass of the solver is one iteration over a :class:`RowStream`, so this is where the memory
and I/O behaviour of a fit is decided: a few reused buffers of ``batch_size`` rows, the next block
read by a helper thread while the current one is used, and memory maps read with plain file reads
so that their pages do not stay resident (measurements in ``docs/probe.md``).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

from semprobe.memmap import mapped_rows
from semprobe.probe.errors import ProbeError
from semprobe.probe.inputs import is_sparse


def file_layout(X: Any) -> tuple[str, int] | None:
    """``(path, byte offset of row 0)`` of a 2-D C-contiguous shared ``np.memmap``, else ``None``.

    Copy-on-write memmaps may hold changes that the file does not, and views that are not
    C-contiguous have no simple layout: those are read through the mapping instead.
    """
    if getattr(X, "ndim", None) != 2:
        return None
    rows = mapped_rows(X)
    return None if rows is None else (rows.filename, rows.file_offset)


def read_exact(fh: Any, position: int, out: np.ndarray) -> None:
    """Fill ``out`` with the bytes of the open file ``fh`` that start at ``position``."""
    flat = out.reshape(-1).view(np.uint8)
    fh.seek(position)
    done = 0
    while done < len(flat):
        got = fh.readinto(flat[done:])
        if not got:
            raise ProbeError(f"{fh.name} ended before byte {position + len(flat)}")
        done += got


class RowStream:
    """Iterate over ``X`` (optionally a sorted subset of its rows) in blocks of ``batch_size`` rows.

    * An in-memory float32 C-contiguous array is handed out as views, without copying.
    * Any other input is copied block by block into a few float32 buffers that are allocated once
      and reused: fresh memory costs a page fault per page.
    * A file-backed ``np.memmap`` is read with plain file reads rather than through its mapping:
      mapped pages would stay in the resident set, and faulting them in is slower than ``read``.

    The next block is prepared by a helper thread while the current one is being used. A block is
    only valid until the next one is requested: its buffer is then refilled.

    Parameters
    ----------
    X:
        Output of :func:`~semprobe.probe.inputs.as_2d`.
    rows:
        Sorted row indices to read, or ``None`` for all rows.
    batch_size:
        Rows per block.
    device:
        Where the blocks are sent; non-CPU devices receive the stored dtype and convert there.

    Examples
    --------
    >>> import numpy as np, torch
    >>> stream = RowStream(np.ones((5, 2)), None, 2, torch.device("cpu"))
    >>> [(start, stop, tuple(block.shape)) for start, stop, block in stream]
    [(0, 2, (2, 2)), (2, 4, (2, 2)), (4, 5, (1, 2))]
    """

    _SLOTS = 3  # the block in use, the next one, and the one being read

    def __init__(
        self, X: Any, rows: np.ndarray | None, batch_size: int, device: torch.device
    ) -> None:
        self.X = X
        self.rows = rows
        self.batch_size = batch_size
        self.device = device
        self.n = X.shape[0] if rows is None else len(rows)
        self.n_features = X.shape[1]
        self._file = file_layout(X)
        self._zero_copy = (
            self._file is None
            and rows is None
            and isinstance(X, np.ndarray)
            and X.dtype == np.float32
            and X.flags.c_contiguous
        )
        self._raw: list[np.ndarray | None] = [None] * self._SLOTS
        self._span: np.ndarray | None = None
        self._out: list[Tensor | None] = [None] * self._SLOTS

    def _raw_buffer(self, slot: int, count: int) -> np.ndarray:
        buf = self._raw[slot]
        if buf is None:
            rows = min(self.batch_size, self.n)
            buf = self._raw[slot] = np.empty((rows, self.n_features), dtype=self.X.dtype)
        return buf[:count]

    def _from_file(self, fh: Any, slot: int, start: int, stop: int) -> np.ndarray:
        assert self._file is not None
        row_bytes = self.n_features * self.X.dtype.itemsize
        if self.rows is None:
            raw = self._raw_buffer(slot, stop - start)
            read_exact(fh, self._file[1] + start * row_bytes, raw)
            return raw
        # A subset: read the rows' whole span once (rows are sorted), then pick them.
        index = self.rows[start:stop]
        first, last = int(index[0]), int(index[-1]) + 1
        if self._span is None or len(self._span) < last - first:
            self._span = np.empty((last - first, self.n_features), dtype=self.X.dtype)
        span = self._span[: last - first]
        read_exact(fh, self._file[1] + first * row_bytes, span)
        raw = self._raw_buffer(slot, stop - start)
        np.take(span, index - first, axis=0, out=raw)
        return raw

    def _read(self, fh: Any, slot: int, start: int) -> Tensor:
        stop = min(self.n, start + self.batch_size)
        if self._zero_copy:
            return torch.from_numpy(self.X[start:stop]).to(self.device)
        if fh is not None:
            raw: Any = self._from_file(fh, slot, start, stop)
        elif self.rows is None:
            raw = self.X[start:stop]
        else:
            raw = self.X[self.rows[start:stop]]
        if is_sparse(raw):
            raw = raw.toarray()
        raw = np.ascontiguousarray(raw)
        if raw.dtype.kind == "b":
            raw = raw.view(np.uint8)
        with warnings.catch_warnings():
            # Read-only memmaps are fine: the tensor is only ever read.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            source = torch.from_numpy(raw)
        if self.device.type != "cpu":
            # Sending the stored dtype (float16: half the bytes) and converting there.
            return source.to(self.device).float()
        out = self._out[slot]
        if out is None:
            out = self._out[slot] = torch.empty(min(self.batch_size, self.n), self.n_features)
        block = out[: stop - start]
        block.copy_(source)
        return block

    def __iter__(self) -> Iterator[tuple[int, int, Tensor]]:
        starts = list(range(0, self.n, self.batch_size))
        with contextlib.ExitStack() as stack:
            fh = None
            if self._file is not None:
                fh = stack.enter_context(open(self._file[0], "rb", buffering=0))
            if len(starts) <= 1:
                for start in starts:
                    yield start, min(self.n, start + self.batch_size), self._read(fh, 0, start)
                return
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
            pending = pool.submit(self._read, fh, 0, starts[0])
            for i, start in enumerate(starts):
                block = pending.result()
                if i + 1 < len(starts):
                    pending = pool.submit(self._read, fh, (i + 1) % self._SLOTS, starts[i + 1])
                yield start, min(self.n, start + self.batch_size), block
