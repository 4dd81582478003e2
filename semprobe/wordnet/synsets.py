"""Class name -> WordNet noun synset.

A class is looked up, in order, in a user's ``class,synset`` overrides file (``--synsets FILE``
on the command line, ``synsets = "FILE"`` in a study's ``[relevance]`` section), in the curated
table ``semprobe/data/class_synsets.csv`` (every CIFAR-100 and CIFAR-10 class, with the sense that
matches the images), as an ImageNet WordNet id (``n01440764``), and as the first noun sense of
its name. Why each curated sense was chosen is in ``docs/wordnet.md``.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from semprobe.errors import SemprobeError
from semprobe.wordnet.install import get_wordnet
from semprobe.wordnet.tables import read_csv_file, read_package_table

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Synset

__all__ = ["SYNSETS_HINT", "class_synsets", "curated_synsets", "read_synset_overrides"]

_IMAGENET_WNID = re.compile(r"n(\d{8})")
#: How a user maps a class by hand, as the error messages say it.
SYNSETS_HINT = (
    "map it in a class,synset file (e.g. the row 'maple_tree,maple.n.02') given with "
    '--synsets FILE, or synsets = "FILE" in a study\'s [relevance] section'
)


def curated_synsets() -> dict[str, str]:
    """The hand-checked WordNet 3.0 sense of each CIFAR-100 and CIFAR-10 class name.

    Returns
    -------
    dict[str, str]
        ``class -> synset name``, read from ``semprobe/data/class_synsets.csv``.

    Examples
    --------
    >>> table = curated_synsets()
    >>> table["maple_tree"], table["mouse"]
    ('maple.n.02', 'mouse.n.01')
    """
    return read_package_table("class_synsets.csv", "synset")


def _normalise(name: str) -> str:
    # WordNet lemma names are lower case with underscores for spaces.
    return re.sub(r"\s+", "_", name.strip()).lower()


@functools.lru_cache(maxsize=4096)
def _synset_by_name(synset_name: str) -> Synset:
    from nltk.corpus.reader.wordnet import WordNetError

    wn = get_wordnet()
    try:
        return wn.synset(synset_name)
    except (WordNetError, ValueError) as exc:
        raise SemprobeError(f"no WordNet synset {synset_name!r}: {exc}") from None


def _imagenet_synset(class_name: str, offset: str) -> Synset:
    from nltk.corpus.reader.wordnet import WordNetError

    try:
        with warnings.catch_warnings():
            # NLTK warns and returns None for an unknown offset; the error below says more.
            warnings.simplefilter("ignore")
            synset = get_wordnet().synset_from_pos_and_offset("n", int(offset))
    except (WordNetError, ValueError):
        synset = None
    if synset is None:
        raise SemprobeError(
            f"class {class_name!r} looks like an ImageNet WordNet id but no WordNet 3.0 noun "
            f"synset has offset {offset}; {SYNSETS_HINT}"
        )
    return synset


@functools.lru_cache(maxsize=4096)
def _default_synset(class_name: str) -> Synset:
    """Curated table, ImageNet offset, or first noun sense, in that order."""
    key = _normalise(class_name)
    curated = curated_synsets()
    if key in curated:
        return _synset_by_name(curated[key])
    match = _IMAGENET_WNID.fullmatch(key)
    if match:
        return _imagenet_synset(class_name, match.group(1))
    senses = get_wordnet().synsets(key, pos="n")
    if not senses:
        raise SemprobeError(f"class {class_name!r} has no WordNet noun synset; {SYNSETS_HINT}")
    return senses[0]


def read_synset_overrides(path: Path | str | None) -> dict[str, str]:
    """Read a ``class,synset`` overrides file (``--synsets FILE``): ``class -> synset name``.

    Only the file's format is checked here (cheap, before any work); the synset names are
    checked against WordNet when the classes are mapped. Class names are matched as written and
    as WordNet lemmas (lower case, spaces as underscores).

    Raises
    ------
    SemprobeError
        A missing file, a bad header, a row without two fields, a class given two synsets, or a
        synset that is not a noun name of the form ``lemma.n.NN``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "synsets.csv"
    >>> _ = path.write_text("class,synset\\nMaple Tree,maple.n.02\\n")
    >>> read_synset_overrides(path)
    {'Maple Tree': 'maple.n.02', 'maple_tree': 'maple.n.02'}
    >>> _ = path.write_text("class,synset\\nmaple_tree,maple\\n")
    >>> read_synset_overrides(path)
    Traceback (most recent call last):
    ...
    semprobe.errors.SemprobeError: ...: maple_tree -> 'maple' is not a noun synset name ...
    """
    if path is None:
        return {}
    file = Path(path).expanduser()
    if not file.is_file():
        raise SemprobeError(f"synsets file {file} does not exist")
    stat = file.stat()
    return dict(_overrides_cached(str(file.resolve()), stat.st_mtime_ns, stat.st_size))


_SYNSET_NAME = re.compile(r".+\.n\.\d{2}")


@functools.lru_cache(maxsize=32)
def _overrides_cached(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    # Keyed on mtime and size so that an edited file is read again.
    table = read_csv_file(Path(path), "synset")
    out: dict[str, str] = {}
    for name, synset in table.items():
        if not _SYNSET_NAME.fullmatch(synset):
            raise SemprobeError(
                f"{path}: {name} -> {synset!r} is not a noun synset name like 'maple.n.02'"
            )
        out[name] = synset
        out.setdefault(_normalise(name), synset)
    return tuple(out.items())


def class_synsets(
    class_names: Sequence[str], overrides_csv: Path | str | None = None
) -> dict[str, Synset]:
    """Map class names to WordNet noun synsets (see the module docstring for the order).

    Parameters
    ----------
    class_names
        The classes to map; spaces become underscores, as in WordNet lemmas.
    overrides_csv
        Optional ``--synsets`` file: a CSV with header ``class,synset``, e.g.
        ``maple_tree,maple.n.02`` (see :func:`read_synset_overrides`).

    Returns
    -------
    dict[str, nltk.corpus.reader.wordnet.Synset]
        ``class -> synset``, in the order of ``class_names``.

    Raises
    ------
    SemprobeError
        If WordNet is not set up, the overrides file is malformed or names an unknown synset,
        or a class has no noun synset (the message says how to map it with ``--synsets``).

    Examples
    --------
    >>> from semprobe.wordnet import wordnet_available
    >>> if not wordnet_available():
    ...     import pytest; pytest.skip("WordNet is not set up")
    >>> class_synsets(["maple_tree", "n02084071"])
    {'maple_tree': Synset('maple.n.02'), 'n02084071': Synset('dog.n.01')}
    """
    overrides = read_synset_overrides(overrides_csv)
    result: dict[str, Synset] = {}
    for name in class_names:
        chosen = overrides.get(name, overrides.get(_normalise(name)))
        if chosen is not None:
            try:
                result[name] = _synset_by_name(chosen)
            except SemprobeError as exc:
                raise SemprobeError(f"{overrides_csv}: class {name!r}: {exc}") from None
        else:
            result[name] = _default_synset(name)
    return result
