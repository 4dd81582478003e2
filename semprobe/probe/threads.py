"""How many CPU threads the probe's arithmetic runs on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# Multiply-adds per block below which the CPU arithmetic runs on one thread.
_PARALLEL_WORK = 1 << 24


@contextlib.contextmanager
def threads_for(device: torch.device, work: int, n_threads: int | None) -> Iterator[None]:
    """Run the CPU arithmetic on ``n_threads`` threads (``None``: torch's setting), then restore.

    With ``n_threads=None``, problems below ``_PARALLEL_WORK`` multiply-adds per block run on one
    thread: their matrix products take a few milliseconds, and synchronising threads costs more
    than it saves. Non-CPU devices are left alone.

    Parameters
    ----------
    device:
        Where the arithmetic runs.
    work:
        Multiply-adds per block of rows.
    n_threads:
        Threads to use, or ``None`` to decide from ``work``.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with threads_for(torch.device("cpu"), 1, None):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    previous = torch.get_num_threads()
    wanted = n_threads if n_threads is not None else (1 if work < _PARALLEL_WORK else previous)
    if device.type != "cpu" or wanted == previous:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
