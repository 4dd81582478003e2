"""Where the rows of a memory-mapped array live: the one reader of ``np.memmap`` internals.

The probe streams rows straight from the file (``pread`` into pinned buffers) and the entropy
statistics tell the kernel which pages they no longer need (``madvise``). Both need the same
facts about an array: the ``mmap`` behind it, the byte offset of row 0 in the mapping and in the
file, and the bytes per row. numpy does not expose them, so they are derived here, once.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Any

import numpy as np

# Copy-on-write mappings (mode "c") may hold changes the file does not: they are not file rows.
_SHARED_MODES = ("r", "r+", "w+")


@dataclass(frozen=True)
class MappedRows:
    """The layout of a C-contiguous, file-backed array's rows.

    Attributes
    ----------
    mapping:
        The ``mmap.mmap`` object numpy opened.
    filename:
        The file behind the mapping.
    mapping_offset:
        Byte offset of row 0 from the start of ``mapping``.
    file_offset:
        Byte offset of row 0 from the start of ``filename``.
    row_bytes:
        Bytes per row (the first stride).
    """

    mapping: mmap.mmap
    filename: str
    mapping_offset: int
    file_offset: int
    row_bytes: int


def mapped_rows(array: Any) -> MappedRows | None:
    """The :class:`MappedRows` of a shared, C-contiguous ``np.memmap``; ``None`` for anything else.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(path, np.zeros((4, 3), np.float32))
    >>> rows = mapped_rows(np.load(path, mmap_mode="r"))
    >>> rows.file_offset, rows.row_bytes
    (128, 12)
    >>> mapped_rows(np.zeros((4, 3))) is None
    True
    """
    mm = getattr(array, "_mmap", None)
    filename = getattr(array, "filename", None)
    if not (
        isinstance(array, np.memmap)
        and isinstance(mm, mmap.mmap)
        and filename
        and getattr(array, "mode", None) in _SHARED_MODES
        and array.ndim >= 1
        and array.flags.c_contiguous
    ):
        return None
    try:
        view = np.frombuffer(mm, dtype=np.uint8, count=1)
    except (TypeError, ValueError):  # a closed or empty mapping
        return None
    base = int(view.ctypes.data)
    del view  # an exported buffer would keep the mapping from being closed
    mapping_offset = int(array.ctypes.data) - base
    # np.memmap maps the file from ``offset`` rounded down to the allocation granularity.
    map_start = int(array.offset) - int(array.offset) % mmap.ALLOCATIONGRANULARITY
    return MappedRows(
        mapping=mm,
        filename=str(filename),
        mapping_offset=mapping_offset,
        file_offset=map_start + mapping_offset,
        row_bytes=int(array.strides[0]),
    )
