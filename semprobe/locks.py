"""Inter-process locks on the feature cache: one writer per cache entry, every other run waits.

Two runs that need the same cache entry at once (two ``semprobe relevance`` on one checkpoint,
say) take the entry's lock in turn: the first builds it, the second finds it complete and reads
it. The lock is an OS file lock (``filelock``'s ``fcntl``/``flock``), so a killed holder
releases it at once and nothing stale is left to clean up; the lock file itself stays, hidden.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from semprobe.errors import CacheError


def lock_path(entry: Path) -> Path:
    """The lock file of a cache entry (a sibling: locking must not touch the entry itself)."""
    return entry.parent / f".{entry.name}.lock"


@contextlib.contextmanager
def holding(
    entry: Path,
    what: str,
    say: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> Iterator[None]:
    """Hold ``entry``'s lock for the block; ``say`` a line if another process holds it first.

    Parameters
    ----------
    entry:
        The cache file or directory the lock protects.
    what:
        Its name in messages.
    say:
        Called with one line when the lock is busy (e.g. ``print``).
    timeout:
        Seconds to wait at most (default: ``$SEMPROBE_LOCK_TIMEOUT``, else forever).

    Examples
    --------
    >>> import tempfile
    >>> entry = Path(tempfile.mkdtemp()) / "cache"
    >>> with holding(entry, "demo"):
    ...     lock_path(entry).exists()
    True
    """
    if timeout is None:
        timeout = float(os.environ.get("SEMPROBE_LOCK_TIMEOUT", "-1"))
    lock = FileLock(str(lock_path(entry)), is_singleton=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if say is not None:
            say(f"waiting for {what} {entry.name}: another process is writing it")
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise CacheError(
                f"{what} {entry} stayed locked by another process for {timeout:g} s"
            ) from None
    except OSError as exc:
        raise CacheError(f"cannot lock {what} {entry}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        lock.release()
