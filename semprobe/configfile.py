"""Reading a TOML or YAML file of settings (study files, pretraining configs), one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from semprobe.errors import SemprobeError


def read_table_file(path: str | Path, what: str = "settings file") -> dict[str, Any]:
    """The top-level table of a ``.toml``, ``.yaml`` or ``.yml`` file.

    Raises
    ------
    SemprobeError
        Missing or unreadable file, another suffix, a syntax error (its first line), or a file
        whose top level is not a table; ``what`` names the file's role in each message.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise SemprobeError(f"{what} {file} must end in .toml, .yaml or .yml")
    try:
        text = file.read_text()
    except OSError as exc:
        raise SemprobeError(f"cannot read {what} {file}: {exc.strerror or exc}") from None
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as exc:  # tomllib.TOMLDecodeError, yaml.YAMLError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SemprobeError(f"cannot parse {what} {file}: {first}") from None
    if not isinstance(data, dict):
        raise SemprobeError(f"{what} {file} must hold a table of keys")
    return data
