"""``.npy`` files of known shape, preallocated and written by rows at any offset.

The feature cache writes each array this way: the file is created once with numpy's version-2
header and its full size reserved (``posix_fallocate``, so a full disk fails before any work,
not hours into it), then each writer ``pwrite``s its rows where they belong. One process can
write every row, or several processes (the ranks of a sharded extraction, on one shared file
system) each their own range, and the file is byte for byte the same. Memory stays bounded by
one block of rows; no memory map is involved (dirty mapped pages would count as resident).
"""

from __future__ import annotations

import errno
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np


def header_bytes(shape: tuple[int, ...], dtype: Any) -> bytes:
    """numpy's version-2.0 ``.npy`` header for a C-ordered array of ``shape`` and ``dtype``.

    Examples
    --------
    >>> len(header_bytes((10, 3), np.float32)) % 64
    0
    """
    buffer = io.BytesIO()
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(int(s) for s in shape),
    }
    np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


class RowFile:
    """An open ``.npy`` of fixed shape whose rows are written with :meth:`write`.

    Use :meth:`create` once, then open it (in this or another process) with the same shape and
    dtype; :meth:`close` fsyncs.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.npy"
    >>> RowFile.create(path, (4, 2), np.float32)
    >>> with RowFile(path, (4, 2), np.float32) as rows:
    ...     rows.write(2, np.ones((2, 2)))
    >>> np.load(path).tolist()
    [[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    """

    def __init__(self, path: str | os.PathLike[str], shape: tuple[int, ...], dtype: Any) -> None:
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.offset = len(header_bytes(self.shape, self.dtype))
        self.row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize
        self.fd = os.open(self.path, os.O_WRONLY)

    @classmethod
    def create(cls, path: str | os.PathLike[str], shape: tuple[int, ...], dtype: Any) -> None:
        """Create the file: header, and every row's bytes reserved (zeros until written)."""
        header = header_bytes(shape, dtype)
        size = len(header) + math.prod(shape) * np.dtype(dtype).itemsize
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, header, 0)
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise  # ENOSPC above all: the disk cannot hold the array
                os.ftruncate(fd, size)  # a file system without fallocate (some NFS)
        finally:
            os.close(fd)

    def write(self, start_row: int, block: np.ndarray) -> None:
        """Write ``block`` (rows of the file's row shape) at row ``start_row``."""
        data = np.ascontiguousarray(block, dtype=self.dtype)
        if data.shape[1:] != self.shape[1:] or not 0 <= start_row <= self.shape[0] - len(data):
            raise ValueError(
                f"{self.path}: rows {start_row}..{start_row + len(data)} of shape "
                f"{data.shape[1:]} do not fit {self.shape}"
            )
        _write_all(self.fd, data.tobytes(), self.offset + start_row * self.row_bytes)

    def close(self, sync: bool = True) -> None:
        """Flush the rows to disk (``sync``) and close."""
        if self.fd < 0:
            return
        try:
            if sync:
                os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RowFile:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        self.close(sync=kind is None)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
