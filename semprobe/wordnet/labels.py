"""Concept labels: the WordNet concept that a set of classes shares.

The label of some classes is their lowest common hypernym (the deepest shared ancestor, as in
NLTK's ``lowest_common_hypernyms``), or ``mixed`` when that ancestor is too shallow to say
anything (``entity.n.01``, ``object.n.01``, ...). ``docs/wordnet.md`` explains the threshold.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from semprobe.errors import SemprobeError
from semprobe.wordnet.synsets import class_synsets

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Synset

__all__ = ["DEFAULT_CONCEPT_MIN_DEPTH", "concept_label"]

#: Shallowest lowest common hypernym (counted on its longest root path, ``Synset.max_depth()``)
#: that :func:`concept_label` still reports as a concept: accepts ``artifact.n.01`` and
#: ``person.n.01``, rejects ``object.n.01`` and ``whole.n.02``.
DEFAULT_CONCEPT_MIN_DEPTH = 4


@functools.lru_cache(maxsize=4096)
def _ancestors(synset: Synset) -> frozenset[Synset]:
    """``synset`` and all its (instance) hypernyms."""
    return frozenset(s for path in synset.hypernym_paths() for s in path)


def _lowest_common_hypernym(synsets: Sequence[Synset]) -> Synset | None:
    common = set(_ancestors(synsets[0]))
    for synset in synsets[1:]:
        common &= _ancestors(synset)
    if not common:
        return None
    # Deepest first, as NLTK's lowest_common_hypernyms; names make ties deterministic.
    return min(common, key=lambda s: (-s.max_depth(), -s.min_depth(), s.name()))


def concept_label(
    class_names: Sequence[str],
    min_depth: int = DEFAULT_CONCEPT_MIN_DEPTH,
    overrides_csv: Path | str | None = None,
) -> tuple[str, int]:
    """Name the WordNet concept shared by some classes.

    Parameters
    ----------
    class_names
        One or more classes (e.g. the classes a feature fires on).
    min_depth
        The common hypernym is a concept only if its longest path from the root has at least
        this many edges (``Synset.max_depth()``); raise it (e.g. to 6) for stricter labels.
    overrides_csv
        Optional ``class,synset`` CSV passed to :func:`semprobe.wordnet.class_synsets`.

    Returns
    -------
    tuple[str, int]
        The lowest common hypernym and its ``min_depth()``. A single class gives its own synset.
        ``("mixed", depth)`` when the common hypernym is shallower than ``min_depth`` (depth -1
        if there is none).

    Raises
    ------
    SemprobeError
        If ``class_names`` is empty, or as :func:`semprobe.wordnet.class_synsets`.

    Examples
    --------
    >>> from semprobe.wordnet import wordnet_available
    >>> if not wordnet_available():
    ...     import pytest; pytest.skip("WordNet is not set up")
    >>> concept_label(["maple_tree", "oak_tree", "pine_tree", "willow_tree"])
    ('tree.n.01', 9)
    >>> concept_label(["apple", "bus"])[0]
    'mixed'
    """
    unique = list(dict.fromkeys(class_names))
    if not unique:
        raise SemprobeError("concept_label needs at least one class")
    synsets = list(dict.fromkeys(class_synsets(unique, overrides_csv).values()))
    if len(synsets) == 1:
        # One concept, however shallow, names itself.
        return str(synsets[0].name()), int(synsets[0].min_depth())
    lch = _lowest_common_hypernym(synsets)
    if lch is None:
        return "mixed", -1
    depth = int(lch.min_depth())
    if lch.max_depth() < min_depth:
        return "mixed", depth
    return str(lch.name()), depth
