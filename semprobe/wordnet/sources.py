"""Superclass sources: the short spec strings of ``--superclasses`` and what they map classes to.

``coarse``
    The dataset's own superclass table: CIFAR-100's official coarse labels, a
    ``superclasses.csv`` beside an ImageFolder, the planted groups of ``synthetic``.
``wordnet`` or ``wordnet:DEPTH``
    The WordNet ancestor of each class at a fixed depth below ``entity.n.01``.
``file:PATH.csv``
    A user CSV with header ``class,superclass``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from semprobe.errors import SemprobeError
from semprobe.wordnet.groupings import wordnet_superclasses
from semprobe.wordnet.tables import check_all_present, read_superclass_csv

__all__ = ["SuperclassSource", "parse_superclass_source", "superclasses_from_source"]

_SOURCE_KINDS = ("coarse", "wordnet", "wordnet:DEPTH", "file:PATH.csv")


@dataclass(frozen=True)
class SuperclassSource:
    """Where superclasses come from.

    Attributes
    ----------
    kind
        ``"coarse"`` (the dataset's own table), ``"wordnet"`` or ``"file"``.
    depth
        WordNet depth for ``kind == "wordnet"`` (``None``: the default depth).
    path
        CSV path for ``kind == "file"``.
    """

    kind: Literal["coarse", "wordnet", "file"]
    depth: int | None = None
    path: Path | None = None

    def __str__(self) -> str:
        if self.kind == "wordnet" and self.depth is not None:
            return f"wordnet:{self.depth}"
        if self.kind == "file":
            return f"file:{self.path}"
        return self.kind


def parse_superclass_source(spec: str) -> SuperclassSource:
    """Parse a superclass source spec.

    Parameters
    ----------
    spec
        ``coarse``, ``wordnet``, ``wordnet:DEPTH`` (integer >= 1) or ``file:PATH.csv``.

    Returns
    -------
    SuperclassSource
        The parsed source.

    Raises
    ------
    SemprobeError
        If the spec is not one of the above, naming it and listing the valid forms.

    Examples
    --------
    >>> parse_superclass_source("wordnet:5")
    SuperclassSource(kind='wordnet', depth=5, path=None)
    >>> str(parse_superclass_source(" coarse "))
    'coarse'
    >>> str(parse_superclass_source("file:groups.csv"))
    'file:groups.csv'
    >>> parse_superclass_source("imagenet")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    semprobe.errors.SemprobeError: unknown superclass source 'imagenet'; valid sources: coarse, ...
    """
    text = spec.strip()
    if text == "coarse":
        return SuperclassSource("coarse")
    if text == "wordnet":
        return SuperclassSource("wordnet")
    if text.startswith("wordnet:"):
        raw = text.removeprefix("wordnet:").strip()
        if not re.fullmatch(r"\d+", raw) or int(raw) < 1:
            raise SemprobeError(
                f"superclass source {spec!r}: the WordNet depth must be an integer >= 1, "
                f"got {raw!r}"
            )
        return SuperclassSource("wordnet", depth=int(raw))
    if text.startswith("file:"):
        raw = text.removeprefix("file:").strip()
        if not raw.lower().endswith(".csv"):
            raise SemprobeError(
                f"superclass source {spec!r}: expected a .csv file after 'file:', got {raw!r}"
            )
        return SuperclassSource("file", path=Path(raw).expanduser())
    raise SemprobeError(
        f"unknown superclass source {spec!r}; valid sources: {', '.join(_SOURCE_KINDS)}"
    )


def superclasses_from_source(
    source: SuperclassSource | str,
    class_names: Sequence[str],
    overrides_csv: Path | None = None,
    *,
    dataset_superclasses: Mapping[str, str] | None = None,
    dataset: str | None = None,
) -> dict[str, str]:
    """Map every class to its superclass using ``source``.

    Parameters
    ----------
    source
        A :class:`SuperclassSource` or a spec string for :func:`parse_superclass_source`.
    class_names
        The classes to map.
    overrides_csv
        Optional ``class,synset`` CSV, used by the ``wordnet`` source only.
    dataset_superclasses
        The dataset's own ``class -> superclass`` table, which ``coarse`` stands for
        (``LabeledImages.superclass_of``); ``None`` where the dataset has none.
    dataset
        The dataset's name, for the error when ``coarse`` is asked of a dataset without a table.

    Returns
    -------
    dict[str, str]
        ``class -> superclass`` for every class, in the order of ``class_names``.

    Raises
    ------
    SemprobeError
        If ``coarse`` is asked without a dataset table, or a class is missing from the table.

    Examples
    --------
    >>> superclasses_from_source("coarse", ["cat", "oak"], dataset_superclasses={
    ...     "cat": "animal", "oak": "plant"})
    {'cat': 'animal', 'oak': 'plant'}
    >>> superclasses_from_source("coarse", ["cat"], dataset="cifar10")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    semprobe.errors.SemprobeError: dataset 'cifar10' has no coarse superclasses ...
    """
    src = parse_superclass_source(source) if isinstance(source, str) else source
    if src.kind == "coarse":
        which = f"dataset {dataset!r}" if dataset else "this dataset"
        if dataset_superclasses is None:
            raise SemprobeError(
                f"{which} has no coarse superclasses (no superclass table of its own); "
                "use wordnet[:DEPTH] or file:PATH.csv"
            )
        check_all_present(class_names, dataset_superclasses, f"the superclass table of {which}")
        return {name: dataset_superclasses[name] for name in class_names}
    if src.kind == "wordnet":
        return wordnet_superclasses(class_names, depth=src.depth, overrides_csv=overrides_csv)
    assert src.path is not None
    return read_superclass_csv(src.path, class_names)
