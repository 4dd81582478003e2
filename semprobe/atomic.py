"""Atomic writes: a killed process never leaves a half file or directory under the final name.

Every file writer in the project goes through :func:`atomic_path`: it hands out a temporary path
in the same directory, and only after the caller has written it completely is the file fsynced
and renamed over the destination (``os.replace`` is atomic on POSIX within one file system).
Directories (feature caches, run directories, the WordNet corpus) go through
:func:`atomic_directory`: built under a temporary name, fsynced, then swapped into place.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from semprobe.errors import SemprobeError

_TORCH_WRITE_ERRORS = ("iostream", "inline_container", "PytorchStreamWriter", "file write failed")


def _process_umask() -> int:
    # Read once, at import: os.umask can only be read by setting it, which is not thread-safe.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


# The mode open() gives a new file; mkstemp's temporary files are private (0o600), and a run
# or cache shared with colleagues must stay readable to them after the rename.
NEW_FILE_MODE = 0o666 & ~_process_umask()


def _fsync_dir(directory: Path) -> None:
    # The rename itself must reach the disk, or a crash could resurrect the old file.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def ensure_writable_dir(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` if needed and check that files can be written in it.

    Raises
    ------
    SemprobeError
        If the directory cannot be created or written, naming the directory.
    """
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SemprobeError(f"cannot create directory {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SemprobeError(f"directory {path} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success move it atomically to ``destination``.

    The temporary file lives beside the destination (same file system) and is named
    ``.<name>.<random>.tmp<suffix>`` so that no reader globbing for the final name picks it up.
    On any exception, including a full disk, the temporary file is removed and the destination is
    left as it was.
    """
    dest = Path(destination)
    ensure_writable_dir(dest.parent)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=f".tmp{suffix}", dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.chmod(NEW_FILE_MODE)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SemprobeError(f"cannot write {dest}: {exc.strerror or exc}") from None
    except RuntimeError as exc:
        tmp.unlink(missing_ok=True)
        if not any(word in str(exc) for word in _TORCH_WRITE_ERRORS):
            raise
        # torch.save reports a failed write (a full disk, typically) as a RuntimeError.
        full = shutil.disk_usage(dest.parent).free < 1 << 20
        reason = "No space left on device" if full else str(exc).strip().splitlines()[0]
        raise SemprobeError(f"cannot write {dest}: {reason}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(destination: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``destination`` atomically."""
    with atomic_path(destination) as tmp:
        tmp.write_bytes(data)


def write_text(destination: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``destination`` atomically."""
    write_bytes(destination, text.encode("utf-8"))


def write_json(destination: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically (byte-stable across runs)."""
    write_text(destination, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(folder))


_RENAME_EXCHANGE = 2  # <linux/fs.h>; swaps two paths in one atomic step


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically with Linux's ``renameat2``; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # a file system without the exchange (some network file systems)
    raise OSError(err, os.strerror(err))


def _swap_into_place(work: Path, final: Path) -> None:
    if not final.exists():
        os.rename(work, final)
        return
    if _exchange(work, final):
        shutil.rmtree(work, ignore_errors=True)  # ``work`` now holds the old directory
        return
    # Without an exchange there is a moment with no directory under the final name; the old one
    # is kept (renamed aside) until the new one is in place, and the next writer puts it back if
    # this process dies in between (see _restore_old).
    old = temporary_sibling(final, "old")
    os.rename(final, old)
    try:
        os.rename(work, final)
    except OSError:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_pid(leftover: Path) -> int | None:
    """The process id in a :func:`temporary_sibling` name, or None if it has none."""
    try:
        return int(leftover.name.rsplit("-", 2)[-2])
    except (ValueError, IndexError):
        return None


def remove_dead_leftovers(final: Path, tag: str) -> None:
    """Delete ``final``'s temporary siblings of this ``tag`` whose process is gone."""
    for leftover in final.parent.glob(f".{final.name}.{tag}-*"):
        pid = owner_pid(leftover)
        if pid is not None and not _pid_alive(pid):
            shutil.rmtree(leftover, ignore_errors=True)


def _restore_old(final: Path) -> None:
    """Put back an old directory that a killed swap had renamed aside (no exchange available)."""
    if final.exists():
        return
    for old in sorted(final.parent.glob(f".{final.name}.old-*")):
        pid = owner_pid(old)
        if pid is not None and not _pid_alive(pid):
            os.rename(old, final)
            return


def temporary_sibling(final: Path, tag: str) -> Path:
    """A hidden name beside ``final`` that says which process owns it: ``.NAME.TAG-PID-RANDOM``."""
    return final.parent / f".{final.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def atomic_directory(
    destination: str | os.PathLike[str],
    tag: str = "tmp",
    what: str = "directory",
    error: type[SemprobeError] = SemprobeError,
) -> Iterator[Path]:
    """Yield an empty temporary directory to fill; on success it replaces ``destination``.

    The directory is built beside the destination (``.<name>.<tag>-<pid>-<random>``), every file
    in it is fsynced, and it is swapped into place: on Linux in one atomic exchange, elsewhere by
    renaming the old directory aside first. Either way the old directory stays under the final
    name until the new one is complete, and a killed process leaves the old one (or none, if
    there was none) and a hidden leftover that is never read as valid. On an exception the
    temporary directory is removed and the destination is untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> final = pathlib.Path(tempfile.mkdtemp()) / "cache"
    >>> with atomic_directory(final) as work:
    ...     _ = (work / "a.txt").write_text("done")
    >>> (final / "a.txt").read_text()
    'done'
    """
    final = Path(destination).absolute()
    ensure_writable_dir(final.parent)
    work = temporary_sibling(final, tag)
    try:
        _restore_old(final)
        work.mkdir()
        yield work
        _fsync_tree(work)
        _swap_into_place(work, final)
        _fsync_dir(final.parent)
    except OSError as exc:
        raise error(f"cannot write {what} {final}: {exc.strerror or exc}") from None
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
