"""Two-column CSV tables: user superclass files, synset overrides and the package's own tables.

Every table is a UTF-8 CSV with a ``class,<value>`` header. The readers reject conflicting
duplicate rows and name the missing classes, so a typo in a user file fails in one line.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path

from semprobe.errors import SemprobeError

__all__ = ["CIFAR10_CLASSES", "cifar100_coarse", "read_package_table", "read_superclass_csv"]

#: The ten CIFAR-10 class names, in label order.
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_MAX_NAMED = 10


def named_list(names: Sequence[str]) -> str:
    """Up to ten names, then ``and N more``: error messages stay one readable line.

    Examples
    --------
    >>> named_list(["a", "b"])
    'a, b'
    >>> named_list([str(i) for i in range(12)])
    '0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more'
    """
    shown = ", ".join(names[:_MAX_NAMED])
    rest = len(names) - _MAX_NAMED
    return f"{shown} and {rest} more" if rest > 0 else shown


def check_all_present(class_names: Iterable[str], table: Mapping[str, str], where: str) -> None:
    """Raise a :class:`SemprobeError` naming the classes of ``class_names`` not in ``table``."""
    missing = [name for name in dict.fromkeys(class_names) if name not in table]
    if missing:
        raise SemprobeError(f"{len(missing)} class(es) missing from {where}: {named_list(missing)}")


def parse_two_column_csv(text: str, where: str, value_column: str) -> dict[str, str]:
    """Parse ``class,<value_column>`` CSV text into a dict, rejecting conflicting duplicates.

    Examples
    --------
    >>> parse_two_column_csv("class,superclass\\ncat,pet\\ncat,pet\\n", "x.csv", "superclass")
    {'cat': 'pet'}
    """
    rows = list(csv.reader(io.StringIO(text)))
    # Blank lines (often a trailing one) carry no information.
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    expected = ["class", value_column]
    if not rows or [cell.strip().lower() for cell in rows[0][:2]] != expected:
        got = ",".join(rows[0]) if rows else "(empty file)"
        raise SemprobeError(f"{where}: expected header 'class,{value_column}', got {got!r}")
    table: dict[str, str] = {}
    conflicts: list[str] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise SemprobeError(
                f"{where}, row {line_no}: expected two non-empty fields, got {','.join(row)!r}"
            )
        key, value = row[0].strip(), row[1].strip()
        if key in table and table[key] != value:
            conflicts.append(f"{key} ({table[key]} vs {value})")
        table.setdefault(key, value)
    if conflicts:
        raise SemprobeError(
            f"{where}: class(es) listed twice with different {value_column}s: "
            f"{named_list(conflicts)}"
        )
    return table


def read_csv_file(path: Path, value_column: str) -> dict[str, str]:
    """Read a ``class,<value_column>`` CSV file (see :func:`parse_two_column_csv`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SemprobeError(f"{value_column} CSV not found: {path}")
    try:
        # utf-8-sig: spreadsheets often prepend a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SemprobeError(f"cannot read {path}: {exc}") from None
    return parse_two_column_csv(text, str(path), value_column)


def read_superclass_csv(path: Path | str, class_names: Sequence[str]) -> dict[str, str]:
    """Read a ``class,superclass`` CSV and map every class in ``class_names``.

    Rows for classes not in ``class_names`` are ignored; repeated identical rows are allowed.

    Parameters
    ----------
    path
        The CSV file, with header ``class,superclass``.
    class_names
        The classes that must all be mapped.

    Returns
    -------
    dict[str, str]
        ``class -> superclass``, in the order of ``class_names``.

    Raises
    ------
    SemprobeError
        If the file is missing or unreadable, has another header, has a row with an empty field,
        maps one class to two superclasses, or lacks some of ``class_names`` (named in the
        message, at most ten of them).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "groups.csv"
    >>> _ = path.write_text("class,superclass\\ncat,pet\\ndog,pet\\nlion,wild\\n")
    >>> read_superclass_csv(path, ["lion", "cat"])
    {'lion': 'wild', 'cat': 'pet'}
    """
    table = read_csv_file(Path(path), "superclass")
    check_all_present(class_names, table, str(path))
    return {name: table[name] for name in class_names}


@functools.lru_cache(maxsize=4)
def _package_table_cached(name: str, value_column: str) -> tuple[tuple[str, str], ...]:
    text = resources.files("semprobe").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(parse_two_column_csv(text, name, value_column).items())


def read_package_table(name: str, value_column: str) -> dict[str, str]:
    """A ``class,<value_column>`` table shipped in ``semprobe/data/`` (read once, then cached)."""
    return dict(_package_table_cached(name, value_column))


def cifar100_coarse() -> dict[str, str]:
    """The official CIFAR-100 fine-to-coarse table: CIFAR-100's own superclasses.

    Returns
    -------
    dict[str, str]
        ``fine class -> coarse class`` for the 100 torchvision class names (``aquarium_fish``,
        ``maple_tree``, ...), sorted by class; 20 coarse classes of 5 classes each.

    Examples
    --------
    >>> table = cifar100_coarse()
    >>> len(table), len(set(table.values())), table["maple_tree"]
    (100, 20, 'trees')
    """
    return read_package_table("cifar100_superclasses.csv", "superclass")
