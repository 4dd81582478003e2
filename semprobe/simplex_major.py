"""A simplex-major copy of a model's test logits, so that one simplex is one contiguous read.

The logits of a run (``<model>/logits.npy``) are row-major, ``(N, L*V)``: one image's states
are contiguous, which the per-image views and the probe need. One simplex's ``V`` columns are
then ``N`` scattered 26-byte pieces (V = 13, float16), and from a cold disk the kernel's
readahead reads the whole file to serve them: 1.3 GB for L = 5000 and 10,000 test images, about
a second. The copy ``<model>/logits_by_simplex.npy`` holds the same values as ``(L, N, V)``, so
that a simplex is ``N * V`` contiguous values (260 KB there). It doubles the disk taken by the
logits; :func:`write_simplex_major` is called by the relevance procedure, and readers fall back
to the strided read when a run has no copy or its copy does not match the logits.

Written by hand: numpy has no out-of-core transpose; this streams blocks of rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from semprobe.atomic import atomic_path
from semprobe.errors import SemprobeError
from semprobe.rundir import RunModel

SIMPLEX_MAJOR_FILE = "logits_by_simplex.npy"

# Rows of the logits transposed at once: bounds the memory of a write to about this many bytes.
_BLOCK_BYTES = 64 << 20


def _check_layout(logits: np.ndarray, num_simplices: int, vocab: int) -> tuple[int, int, int]:
    if logits.ndim != 2 or logits.shape[1] != num_simplices * vocab or num_simplices < 1:
        raise SemprobeError(
            f"logits must be (N, L*V) = (N, {num_simplices}*{vocab}), got {logits.shape}"
        )
    return logits.shape[0], num_simplices, vocab


def write_simplex_major(
    logits: np.ndarray, num_simplices: int, vocab: int, destination: str | os.PathLike[str]
) -> Path:
    """Write ``logits`` ``(N, L*V)`` as an ``(L, N, V)`` ``.npy`` at ``destination``, atomically.

    The rows are read in blocks of about 64 MB and written through a memory map of the new file,
    so memory stays bounded whatever the size of the logits; the dtype is kept.

    Examples
    --------
    >>> import tempfile
    >>> z = np.arange(12, dtype=np.float16).reshape(2, 6)  # N = 2, L = 3, V = 2
    >>> path = write_simplex_major(z, 3, 2, Path(tempfile.mkdtemp()) / "by_simplex.npy")
    >>> np.load(path)[1].tolist()  # simplex 1: columns 2 and 3 of both rows
    [[2.0, 3.0], [8.0, 9.0]]
    """
    n, num_simplices, vocab = _check_layout(logits, num_simplices, vocab)
    rows = max(1, _BLOCK_BYTES // max(1, logits.shape[1] * logits.dtype.itemsize))
    destination = Path(destination)
    with atomic_path(destination, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=logits.dtype, shape=(num_simplices, n, vocab)
        )
        for start in range(0, n, rows):
            block = np.asarray(logits[start : start + rows])
            # (rows, L*V) -> (L, rows, V): each simplex's rows land contiguously in the file.
            out[:, start : start + len(block)] = block.reshape(
                len(block), num_simplices, vocab
            ).transpose(1, 0, 2)
        out.flush()
        del out
    return destination


def matches(copy: np.ndarray, logits: np.ndarray, num_simplices: int, vocab: int) -> bool:
    """Whether ``copy`` is a simplex-major copy of ``logits``, by cheap checks only.

    Shape and dtype, then three samples: the first image's first simplex, the middle image's
    middle simplex and the last image's last simplex (small reads; a copy of other logits of
    the same shape differs there with overwhelming odds).
    """
    n = logits.shape[0]
    if copy.shape != (num_simplices, n, vocab) or copy.dtype != logits.dtype or n == 0:
        return False
    samples = ((0, 0), (n // 2, num_simplices // 2), (n - 1, num_simplices - 1))
    return all(
        np.array_equal(copy[s, i], logits[i, s * vocab : (s + 1) * vocab], equal_nan=True)
        for i, s in samples
    )


def simplex_block(
    logits: np.ndarray, simplex: int, vocab: int, by_simplex: np.ndarray | None = None
) -> np.ndarray:
    """The ``(N, V)`` float32 logits of one simplex: from ``by_simplex`` when given, else strided.

    ``by_simplex`` is the ``(L, N, V)`` copy of ``logits`` (checked with :func:`matches` by
    whoever opened it). The result is a new, writable array either way.
    """
    n_simplices = logits.shape[1] // vocab
    if not 0 <= simplex < n_simplices:
        raise SemprobeError(f"simplex {simplex} is out of range [0, {n_simplices})")
    if by_simplex is not None:
        return np.array(by_simplex[simplex], dtype=np.float32)
    return np.array(logits[:, simplex * vocab : (simplex + 1) * vocab], dtype=np.float32)


def run_simplex_major(
    model: RunModel, logits: np.ndarray, num_simplices: int, vocab: int
) -> np.ndarray | None:
    """The model's kept ``(L, N, V)`` copy of ``logits`` (its opened ``logits.npy``),
    memory-mapped, or None if it has none that matches.

    A copy that fails :func:`matches` (the logits were replaced after it was written, or it is
    damaged) is not used: the caller reads the logits instead.
    """
    relative = f"{model.name}/{SIMPLEX_MAJOR_FILE}"
    if not model.run.path_of(relative, must_exist=False).is_file():
        return None
    try:
        copy = model.run.load_array(relative)
    except SemprobeError:  # a damaged copy is not used
        return None
    return copy if matches(copy, logits, num_simplices, vocab) else None
