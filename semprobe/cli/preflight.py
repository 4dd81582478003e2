"""Cheap checks of a parsed command line, made before any download, training or model build.

A mistyped checkpoint path must be reported as such, not as the dataset download that would
have come first; an output folder that cannot be written must be found before an hour of
training. Only what costs a ``stat`` is checked here; everything else is checked where it is
used, and says so in one line too.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from semprobe.errors import SemprobeError

# Options naming a file that must exist: (attribute, what it is in the message).
_FILES = (
    ("checkpoint", "checkpoint"),
    ("checkpoints", "checkpoint"),
    ("args_json", "args.json"),
    ("resume", "checkpoint to resume from"),
    ("config", "config file"),
    ("study_file", "study file"),
    ("synsets", "synsets file"),
)
# Options naming a folder that is written (it may not exist yet).
_OUTPUTS = (("out", "output folder"), ("cache_dir", "cache folder"))


def check_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a ``Path`` if it is an existing file; else a one-line error naming it.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_file(folder, "checkpoint")
    Traceback (most recent call last):
    ...
    semprobe.errors.SemprobeError: checkpoint ... is a directory, not a file
    """
    file = Path(path)
    if file.is_dir():
        hint = _hint(file)
        raise SemprobeError(f"{what} {file} is a directory, not a file{hint}")
    if not file.is_file():
        raise SemprobeError(f"{what} {file} does not exist")
    return file


def _hint(folder: Path) -> str:
    """A checkpoint inside ``folder`` that the user may have meant, as a suffix of the error."""
    for name in ("final.ckpt", "last.ckpt", "checkpoints/last.ckpt"):
        if (folder / name).is_file():
            return f"; did you mean {folder / name}?"
    return ""


def check_output_folder(path: str | os.PathLike[str], what: str) -> None:
    """Refuse an output folder that is a file, or whose nearest existing parent is not writable."""
    folder = Path(path).absolute()
    if folder.exists() and not folder.is_dir():
        raise SemprobeError(f"{what} {folder} is a file, not a directory")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise SemprobeError(f"cannot create directory {folder} ({what}): {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SemprobeError(
            f"cannot create directory {folder} ({what}): {existing} is not writable"
        )


def preflight(args: argparse.Namespace) -> None:
    """Check every file and output folder a command line names.

    Raises
    ------
    SemprobeError
        The first missing input file or unwritable output folder, named.
    """
    for attr, what in _FILES:
        value = getattr(args, attr, None)
        if value is None:
            continue
        for path in value if isinstance(value, list) else [value]:
            check_file(path, what)
    for attr, what in _OUTPUTS:
        value = getattr(args, attr, None)
        if value:
            check_output_folder(value, what)
