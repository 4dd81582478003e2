"""Which training labels a probe may use: all of them, a class-balanced fraction, or a file list.

The paper's Table 2 trains probes with 100 % and with 1 % of ImageNet's labels. A fraction is
drawn per class (``max(1, round(fraction * n_c))`` images of each class ``c``, a seeded
permutation of its rows), so every class is represented and a balanced dataset keeps its balance.
A label file is one of the standard ImageNet subsets (SimCLR's ``1percent.txt`` and
``10percent.txt``: one file name such as ``n01440764_10026.JPEG`` per line), matched by file name
against the training split's images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semprobe.errors import DatasetError, SemprobeError
from semprobe.protocols.strengths import check_fraction
from semprobe.validation import check_int


@dataclass(frozen=True)
class LabelSet:
    """A named choice of training rows (``rows`` None: every row)."""

    name: str
    rows: np.ndarray | None = None

    def count(self, n: int) -> int:
        return n if self.rows is None else len(self.rows)


def fraction_label(fraction: float) -> str:
    """``0.01 -> "1%"``, ``1.0 -> "100%"``."""
    return f"{100 * fraction:g}%"


def fraction_rows(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted rows of a class-balanced, seeded ``fraction`` of the labels.

    Examples
    --------
    >>> labels = np.repeat([0, 1, 2], 100)
    >>> rows = fraction_rows(labels, 0.05, seed=0)
    >>> np.bincount(labels[rows]).tolist()
    [5, 5, 5]
    >>> bool((rows == fraction_rows(labels, 0.05, seed=0)).all())
    True
    """
    fraction = check_fraction("label fraction", fraction)
    seed = check_int("seed", seed, minimum=0)
    y = np.asarray(labels)
    if fraction == 1.0:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        take = max(1, round(fraction * len(rows)))
        chosen.append(rng.permutation(rows)[:take])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def read_label_file(path: str | os.PathLike[str]) -> list[str]:
    """The file names a label list names (blank lines and ``#`` comments skipped)."""
    file = Path(path)
    try:
        lines = file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SemprobeError(f"cannot read label file {file}: {exc}") from None
    names = [os.path.basename(line.strip()) for line in lines if line.strip()]
    names = [n for n in names if not n.startswith("#")]
    if not names:
        raise SemprobeError(f"label file {file} lists no images")
    return names


def label_file_rows(image_names: Sequence[str], path: str | os.PathLike[str]) -> np.ndarray:
    """Sorted rows of the training images a label file lists, matched by file name.

    Raises
    ------
    SemprobeError
        When a listed image is not in the training split, or a listed name is ambiguous.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "1percent.txt"
    >>> _ = f.write_text("b.JPEG\\na.JPEG\\n")
    >>> label_file_rows(["root/x/a.JPEG", "root/y/b.JPEG", "root/y/c.JPEG"], f).tolist()
    [0, 1]
    """
    wanted = list(dict.fromkeys(read_label_file(path)))
    where: dict[str, int] = {}
    repeated: set[str] = set()
    for i, name in enumerate(image_names):
        base = os.path.basename(name)
        if base in where:
            repeated.add(base)
        where[base] = i
    missing = [n for n in wanted if n not in where]
    if missing:
        raise DatasetError(
            f"label file {path}: {len(missing)} of its {len(wanted)} images are not in the "
            f"training split (e.g. {', '.join(missing[:3])})"
        )
    ambiguous = [n for n in wanted if n in repeated]
    if ambiguous:
        raise DatasetError(f"label file {path}: {ambiguous[0]} names more than one training image")
    return np.sort(np.array([where[n] for n in wanted], dtype=np.int64))


def label_sets(
    labels: np.ndarray,
    fractions: Sequence[float] = (1.0,),
    files: Sequence[tuple[str, str]] = (),
    image_names: Sequence[str] | None = None,
    seed: int = 0,
) -> list[LabelSet]:
    """The label sets of a robustness run: each fraction, then each ``(name, file)``.

    ``image_names`` (the training split's files, in order) is needed only for label files.
    """
    sets = []
    for fraction in dict.fromkeys(fractions):
        rows = fraction_rows(labels, fraction, seed)
        sets.append(LabelSet(fraction_label(fraction), None if len(rows) == len(labels) else rows))
    for name, file in files:
        if image_names is None:
            raise SemprobeError("a label file needs a dataset of image files")
        sets.append(LabelSet(name, label_file_rows(image_names, file)))
    if not sets:
        raise SemprobeError("give at least one label fraction or label file")
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise SemprobeError(f"label sets must have distinct names, got {names}")
    return sets
