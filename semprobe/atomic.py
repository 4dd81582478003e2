"""Atomic file writes: a killed process never leaves a half file under the final name.

Every writer in the project goes through :func:`atomic_path`: it hands out a temporary path in the
same directory, and only after the caller has written it completely is the file fsynced and
renamed over the destination (``os.replace`` is atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from semprobe.errors import SemprobeError

_TORCH_WRITE_ERRORS = ("iostream", "inline_container", "PytorchStreamWriter", "file write failed")


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
