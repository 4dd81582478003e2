"""Superclasses and concept names for class labels, from WordNet 3.0 or a table.

:mod:`~semprobe.wordnet.sources` parses ``--superclasses`` specs (``coarse`` is the dataset's own
table); :mod:`~semprobe.wordnet.tables` reads ``class,superclass`` CSVs;
:mod:`~semprobe.wordnet.install` builds and loads NLTK's WordNet; :mod:`~semprobe.wordnet.synsets`
maps class names to synsets; :mod:`~semprobe.wordnet.groupings` groups classes by WordNet
ancestor; :mod:`~semprobe.wordnet.labels` names the concept some classes share. Background and
measurements: ``docs/wordnet.md``.
"""

from __future__ import annotations

from semprobe.wordnet.groupings import DEFAULT_WORDNET_DEPTH, grouping_report, wordnet_superclasses
from semprobe.wordnet.install import LEXNAMES, get_wordnet, setup_wordnet, wordnet_available
from semprobe.wordnet.labels import DEFAULT_CONCEPT_MIN_DEPTH, concept_label
from semprobe.wordnet.sources import (
    SuperclassSource,
    parse_superclass_source,
    superclasses_from_source,
)
from semprobe.wordnet.synsets import class_synsets, curated_synsets, read_synset_overrides
from semprobe.wordnet.tables import CIFAR10_CLASSES, cifar100_coarse, read_superclass_csv

__all__ = [
    "CIFAR10_CLASSES",
    "DEFAULT_CONCEPT_MIN_DEPTH",
    "DEFAULT_WORDNET_DEPTH",
    "LEXNAMES",
    "SuperclassSource",
    "cifar100_coarse",
    "class_synsets",
    "concept_label",
    "curated_synsets",
    "get_wordnet",
    "grouping_report",
    "parse_superclass_source",
    "read_superclass_csv",
    "read_synset_overrides",
    "setup_wordnet",
    "superclasses_from_source",
    "wordnet_available",
    "wordnet_superclasses",
]
