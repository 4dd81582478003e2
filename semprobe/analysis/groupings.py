"""Superclass groupings of a dataset's classes, one per ``--superclasses`` source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semprobe.errors import SemprobeError
from semprobe.wordnet import grouping_report, parse_superclass_source, superclasses_from_source


@dataclass(frozen=True)
class Grouping:
    """The classes of a dataset grouped by one superclass source."""

    source: str
    labels: list[str]  # superclass of each class, in class order
    report: dict[str, Any]  # see :func:`semprobe.wordnet.grouping_report`


def resolve_groupings(
    sources: Sequence[str],
    class_names: list[str],
    dataset_superclasses: dict[str, str] | None,
    dataset: str | None = None,
    synsets: str | None = None,
) -> list[Grouping]:
    """:func:`resolve_superclasses` for each source, in order."""
    groupings = []
    for source in sources:
        labels, report = resolve_superclasses(
            source, class_names, dataset_superclasses, dataset, synsets
        )
        groupings.append(Grouping(source, labels, report))
    return groupings


def resolve_superclasses(
    source: str,
    class_names: list[str],
    dataset_superclasses: dict[str, str] | None,
    dataset: str | None = None,
    synsets: str | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Superclass of each class from a ``--superclasses`` source, and a report on the grouping.

    ``coarse`` is the dataset's own table (``dataset_superclasses``); ``dataset`` names the
    dataset in the error when it has none; ``synsets`` is the ``class,synset`` overrides file
    of the ``wordnet`` sources.
    """
    parsed = parse_superclass_source(source)
    mapping = superclasses_from_source(
        parsed,
        class_names,
        Path(synsets) if synsets else None,
        dataset_superclasses=dataset_superclasses,
        dataset=dataset,
    )
    labels = [mapping[c] for c in class_names]
    if len(set(labels)) < 2:
        raise SemprobeError(
            f"superclass source {source!r} puts every class in one superclass: relevance is "
            "undefined"
        )
    report = grouping_report(mapping, dataset_superclasses if parsed.kind != "coarse" else None)
    report["source"] = source
    return labels, report
