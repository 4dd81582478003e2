"""Class groupings from WordNet, and a summary of any grouping against a reference.

The ``wordnet[:DEPTH]`` superclass source groups classes by their WordNet ancestor at a fixed
depth. How the depth was chosen (groups and ARI against CIFAR-100's coarse labels, depth by
depth) is in ``docs/wordnet.md``.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semprobe.errors import SemprobeError
from semprobe.wordnet.synsets import class_synsets

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Synset

__all__ = ["DEFAULT_WORDNET_DEPTH", "grouping_report", "wordnet_superclasses"]

#: Depth (edges below ``entity.n.01`` on the shortest hypernym path) used by ``wordnet``: the
#: best agreement with CIFAR-100's coarse labels of depths 1-8 (``docs/wordnet.md``).
DEFAULT_WORDNET_DEPTH = 7


@functools.lru_cache(maxsize=4096)
def _root_path(synset: Synset) -> tuple[Synset, ...]:
    """The shortest hypernym path from the root to ``synset``, ties broken by synset names."""
    paths = synset.hypernym_paths()
    best = min(paths, key=lambda path: (len(path), [s.name() for s in path]))
    return tuple(best)


def wordnet_superclasses(
    class_names: Sequence[str],
    depth: int | None = None,
    overrides_csv: Path | str | None = None,
) -> dict[str, str]:
    """Group classes by their WordNet ancestor at a fixed depth.

    The ancestor is taken on the shortest hypernym path from ``entity.n.01`` (depth 0) to the
    class synset, ties broken by the synset names along the paths, so the grouping is
    deterministic. A class whose synset is shallower than ``depth`` is its own group.

    Parameters
    ----------
    class_names
        The classes to group (mapped with :func:`semprobe.wordnet.class_synsets`).
    depth
        Ancestor depth, >= 1. ``None``: :data:`DEFAULT_WORDNET_DEPTH`.
    overrides_csv
        Optional ``class,synset`` CSV passed to :func:`semprobe.wordnet.class_synsets`.

    Returns
    -------
    dict[str, str]
        ``class -> superclass synset name`` (e.g. ``"woody_plant.n.01"``).

    Examples
    --------
    >>> from semprobe.wordnet import wordnet_available
    >>> if not wordnet_available():
    ...     import pytest; pytest.skip("WordNet is not set up")
    >>> wordnet_superclasses(["maple_tree", "oak_tree", "bus"], depth=9)
    {'maple_tree': 'tree.n.01', 'oak_tree': 'tree.n.01', 'bus': 'bus.n.01'}
    """
    depth = DEFAULT_WORDNET_DEPTH if depth is None else depth
    if depth < 1:
        raise SemprobeError(f"WordNet depth must be >= 1, got {depth}")
    synsets = class_synsets(class_names, overrides_csv)
    result: dict[str, str] = {}
    for name, synset in synsets.items():
        path = _root_path(synset)
        result[name] = (path[depth] if depth < len(path) else path[-1]).name()
    return result


def grouping_report(
    mapping: Mapping[str, str], reference: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Summarise a class -> group mapping, optionally against a reference grouping.

    Parameters
    ----------
    mapping
        ``class -> group``.
    reference
        Optional ``class -> group`` reference (e.g. the dataset's own superclasses); compared on
        the classes the two mappings share.

    Returns
    -------
    dict
        ``n_classes``, ``n_groups``, ``sizes`` (group -> size, largest first, then by name),
        ``singletons`` (number of one-class groups) and, with a reference, ``reference_groups``,
        ``n_compared`` and ``ari`` (:func:`sklearn.metrics.adjusted_rand_score`; ``None`` when
        fewer than two classes are shared).

    Examples
    --------
    >>> report = grouping_report({"a": "x", "b": "x", "c": "y"}, {"a": 1, "b": 1, "c": 2})
    >>> report["sizes"], report["singletons"], report["ari"]
    ({'x': 2, 'y': 1}, 1, 1.0)
    """
    counts = Counter(mapping.values())
    sizes = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    report: dict[str, Any] = {
        "n_classes": len(mapping),
        "n_groups": len(counts),
        "sizes": sizes,
        "singletons": sum(1 for size in counts.values() if size == 1),
    }
    if reference is not None:
        from sklearn.metrics import adjusted_rand_score

        shared = [name for name in mapping if name in reference]
        report["reference_groups"] = len(set(reference[name] for name in shared))
        report["n_compared"] = len(shared)
        report["ari"] = (
            float(
                adjusted_rand_score(
                    [reference[name] for name in shared], [mapping[name] for name in shared]
                )
            )
            if len(shared) >= 2
            else None
        )
    return report
