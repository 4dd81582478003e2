"""Reading memory-mapped input without keeping it resident."""

from __future__ import annotations

import mmap

import numpy as np

from semprobe.memmap import mapped_rows


class RowPager:
    """Prefetch and release row ranges of a read-only or shared ``np.memmap``.

    Pages of a file mapping stay in the process's resident set once touched; telling the kernel
    they are no longer needed (they stay in the page cache) keeps the resident set at about one
    chunk instead of the whole file. A no-op for in-memory arrays and private (copy-on-write)
    mappings, whose pages cannot be dropped without losing data.

    Parameters
    ----------
    array:
        Any array; only a shared, C-contiguous ``np.memmap`` makes the pager :attr:`active`.
    """

    def __init__(self, array: np.ndarray) -> None:
        self._mm: mmap.mmap | None = None
        self._page = mmap.PAGESIZE
        rows = mapped_rows(array)
        if rows is None or not hasattr(rows.mapping, "madvise"):
            return
        self._mm = rows.mapping
        self._offset = rows.mapping_offset
        self._row_bytes = rows.row_bytes
        self._size = len(rows.mapping)

    @property
    def active(self) -> bool:
        """Whether prefetch and release do anything for this array."""
        return self._mm is not None

    def _advise(self, option: int, first_row: int, stop_row: int, inward: bool) -> None:
        if self._mm is None or stop_row <= first_row:
            return
        begin = self._offset + first_row * self._row_bytes
        end = self._offset + stop_row * self._row_bytes
        page = self._page
        if inward:
            # Only whole pages of this range, so neighbouring rows are never affected.
            begin = -(-begin // page) * page
            end = end // page * page
        else:
            begin = begin // page * page
            end = min(-(-end // page) * page, self._size)
        if end > begin:
            try:
                self._mm.madvise(option, begin, end - begin)
            except (OSError, ValueError):
                self._mm = None

    def prefetch(self, first_row: int, stop_row: int) -> None:
        """Ask the kernel to start reading these rows in the background."""
        option = getattr(mmap, "MADV_WILLNEED", None)
        if option is not None:
            self._advise(option, first_row, stop_row, inward=False)

    def release(self, first_row: int, stop_row: int) -> None:
        """Drop these rows from the resident set (they remain in the page cache)."""
        option = getattr(mmap, "MADV_DONTNEED", None)
        if option is not None:
            self._advise(option, first_row, stop_row, inward=True)
