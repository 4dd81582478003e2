"""Class-to-superclass mappings and WordNet concept names.

Superclasses come from one of three sources, selected with a short spec string (see
:func:`parse_superclass_source`):

``coarse``
    The official CIFAR-100 fine-to-coarse table (20 superclasses of 5 classes each).
``wordnet`` or ``wordnet:DEPTH``
    The WordNet ancestor of each class at a fixed depth below ``entity.n.01``.
``file:PATH.csv``
    A user CSV with header ``class,superclass``.

WordNet is read through NLTK. NLTK only reads it from ``<NLTK_DATA>/corpora/wordnet``;
:func:`setup_wordnet` builds that directory from the WordNet 3.0 database that Debian's
``wordnet-base`` and ``wordnet-sense-index`` packages install (adding the ``lexnames`` file they
lack), or downloads it with NLTK where that database is absent.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from semprobe.atomic import ensure_writable_dir
from semprobe.errors import SemprobeError

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Synset

__all__ = [
    "CIFAR10_CLASSES",
    "CURATED_SYNSETS",
    "DEFAULT_CONCEPT_MIN_DEPTH",
    "DEFAULT_WORDNET_DEPTH",
    "LEXNAMES",
    "SuperclassSource",
    "cifar100_coarse",
    "class_synsets",
    "concept_label",
    "get_wordnet",
    "grouping_report",
    "parse_superclass_source",
    "read_superclass_csv",
    "setup_wordnet",
    "superclasses_from_source",
    "wordnet_available",
    "wordnet_superclasses",
]

#: Depth (edges below ``entity.n.01`` on the shortest hypernym path) used by ``wordnet``.
#: On the 100 CIFAR-100 classes it gives 36 groups (27 of them single classes), adjusted Rand
#: index 0.23 against the 20 coarse classes; see :func:`wordnet_superclasses`.
DEFAULT_WORDNET_DEPTH = 7

#: Shallowest lowest common hypernym (counted on its longest root path, ``Synset.max_depth()``)
#: that :func:`concept_label` still reports as a concept; see there.
DEFAULT_CONCEPT_MIN_DEPTH = 4

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

_SOURCE_KINDS = ("coarse", "wordnet", "wordnet:DEPTH", "file:PATH.csv")
_MAX_NAMED = 10


# --------------------------------------------------------------------------------------------
# Superclass sources
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuperclassSource:
    """Where superclasses come from.

    Attributes
    ----------
    kind
        ``"coarse"``, ``"wordnet"`` or ``"file"``.
    depth
        WordNet depth for ``kind == "wordnet"`` (``None``: :data:`DEFAULT_WORDNET_DEPTH`).
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

    Returns
    -------
    dict[str, str]
        ``class -> superclass`` for every class, in the order of ``class_names``.
    """
    src = parse_superclass_source(source) if isinstance(source, str) else source
    if src.kind == "coarse":
        coarse = cifar100_coarse()
        _check_all_present(class_names, coarse, "the CIFAR-100 coarse table")
        return {name: coarse[name] for name in class_names}
    if src.kind == "wordnet":
        return wordnet_superclasses(class_names, depth=src.depth, overrides_csv=overrides_csv)
    assert src.path is not None
    return read_superclass_csv(src.path, class_names)


# --------------------------------------------------------------------------------------------
# CSV tables
# --------------------------------------------------------------------------------------------


def _named_list(names: Sequence[str]) -> str:
    # Error messages stay one readable line even when hundreds of classes are missing.
    shown = ", ".join(names[:_MAX_NAMED])
    rest = len(names) - _MAX_NAMED
    return f"{shown} and {rest} more" if rest > 0 else shown


def _check_all_present(class_names: Iterable[str], table: Mapping[str, str], where: str) -> None:
    missing = [name for name in dict.fromkeys(class_names) if name not in table]
    if missing:
        raise SemprobeError(
            f"{len(missing)} class(es) missing from {where}: {_named_list(missing)}"
        )


def _parse_two_column_csv(text: str, where: str, value_column: str) -> dict[str, str]:
    """Parse ``class,<value_column>`` CSV text into a dict, rejecting conflicting duplicates."""
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
            f"{_named_list(conflicts)}"
        )
    return table


def _read_csv_file(path: Path, value_column: str) -> dict[str, str]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise SemprobeError(f"{value_column} CSV not found: {path}")
    try:
        # utf-8-sig: spreadsheets often prepend a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SemprobeError(f"cannot read {path}: {exc}") from None
    return _parse_two_column_csv(text, str(path), value_column)


def read_superclass_csv(path: Path | str, class_names: Sequence[str]) -> dict[str, str]:
    """Read a ``class,superclass`` CSV and map every class in ``class_names``.

    Parameters
    ----------
    path
        The CSV file. Its header must be ``class,superclass``; rows for classes not in
        ``class_names`` are ignored, repeated identical rows are allowed.
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
    """
    table = _read_csv_file(Path(path), "superclass")
    _check_all_present(class_names, table, str(path))
    return {name: table[name] for name in class_names}


@functools.lru_cache(maxsize=1)
def _cifar100_coarse_cached() -> tuple[tuple[str, str], ...]:
    text = (
        resources.files("semprobe")
        .joinpath("data", "cifar100_superclasses.csv")
        .read_text(encoding="utf-8")
    )
    table = _parse_two_column_csv(text, "cifar100_superclasses.csv", "superclass")
    return tuple(table.items())


def cifar100_coarse() -> dict[str, str]:
    """The official CIFAR-100 fine-to-coarse table.

    Returns
    -------
    dict[str, str]
        ``fine class -> coarse class`` for the 100 torchvision class names (``aquarium_fish``,
        ``maple_tree``, ...), sorted by class; 20 coarse classes of 5 classes each.
    """
    return dict(_cifar100_coarse_cached())


# --------------------------------------------------------------------------------------------
# WordNet setup
# --------------------------------------------------------------------------------------------

#: The 45 WordNet 3.0 lexicographer files, in file-number order (``lexnames(5WN)``).
LEXNAMES: tuple[str, ...] = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)

# Syntactic category numbers of the lexnames file: 1 noun, 2 verb, 3 adjective, 4 adverb.
_LEX_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

# Files NLTK's WordNetCorpusReader opens; all but lexnames ship in the Debian packages
# (index.sense in wordnet-sense-index, the rest in wordnet-base).
_CORPUS_FILES = (
    "cntlist.rev",
    "index.sense",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)

# Entries this module appended to nltk.data.path (a fresh process would not search them).
_ADDED_PATHS: set[str] = set()

_NOT_SET_UP = "WordNet is not set up: run `semprobe wordnet setup`"


def _lexnames_text() -> str:
    return "".join(
        f"{number:02d}\t{name}\t{_LEX_CATEGORY[name.split('.')[0]]}\n"
        for number, name in enumerate(LEXNAMES)
    )


def _default_nltk_target() -> Path:
    for entry in os.environ.get("NLTK_DATA", "").split(os.pathsep):
        if entry.strip():
            return Path(entry.strip()).expanduser()
    return Path.home() / "nltk_data"


def _on_nltk_path(target: Path) -> bool:
    import nltk

    resolved = target.resolve()
    for entry in nltk.data.path:
        # Entries are usually strings, but NLTK also accepts path pointers.
        raw = getattr(entry, "path", entry)
        try:
            if Path(str(raw)).expanduser().resolve() == resolved:
                return True
        except (OSError, RuntimeError, ValueError):
            continue
    return False


def _add_to_nltk_path(target: Path) -> bool:
    """Append ``target`` to ``nltk.data.path`` unless NLTK already searches it."""
    import nltk

    if _on_nltk_path(target):
        return False
    nltk.data.path.append(str(target))
    _ADDED_PATHS.add(str(target))
    return True


def _remove_from_nltk_path(target: Path) -> None:
    import nltk

    if str(target) in nltk.data.path:
        nltk.data.path.remove(str(target))
    _ADDED_PATHS.discard(str(target))


def _load_reader(root: Any) -> Any:
    """Load a WordNet reader from ``root`` and check a few well-known synsets."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _Reader(WordNetCorpusReader):
        # The stock reader maps sense keys from whatever `corpora/wordnet` NLTK finds on its
        # path, which is not this root while it is being built; index.sense is read below.
        def map_wn(self, version: str = "wordnet") -> None:
            return None

    with warnings.catch_warnings():
        # Without the multilingual OMW data NLTK warns; English WordNet is all we use.
        warnings.simplefilter("ignore")
        reader = _Reader(root, None)
    if len(reader.index_sense()) < 200_000:
        raise SemprobeError(f"the WordNet corpus at {root} has a truncated index.sense")
    dog = reader.synset("dog.n.01")
    hypernyms = {s.name() for s in dog.hypernyms()}
    if "canine.n.02" not in hypernyms or dog.lexname() != "noun.animal":
        raise SemprobeError(f"the WordNet corpus at {root} does not look like WordNet 3.0")
    if reader.synset_from_pos_and_offset("n", 2084071) != dog:
        raise SemprobeError(f"the WordNet corpus at {root} has unexpected synset offsets")
    return reader


def _verify_corpus(root: Any) -> str | None:
    """Return ``None`` if WordNet loads from ``root``, else the reason it does not."""
    try:
        _load_reader(root)
    except SemprobeError as exc:
        return str(exc)
    except Exception as exc:  # a damaged file can fail the parser in any way
        return f"{type(exc).__name__}: {exc}"
    return None


def _find_corpus(target: Path) -> Any | None:
    """NLTK's path pointer to ``corpora/wordnet`` (directory or zip) under ``target``, if any."""
    import nltk

    # The order of nltk.corpus.wordnet: the zip that nltk.download leaves, then a directory.
    for resource in ("corpora/wordnet.zip/wordnet/", "corpora/wordnet"):
        try:
            return nltk.data.find(resource, paths=[str(target)])
        except LookupError:
            continue
    return None


def _build_from_source(source: Path, corpora: Path, dest: Path) -> None:
    """Copy the database into a temporary directory beside ``dest``, check it, rename it."""
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet.", suffix=".tmp", dir=corpora))
    try:
        for name in _CORPUS_FILES:
            shutil.copyfile(source / name, tmp / name)
        (tmp / "lexnames").write_text(_lexnames_text(), encoding="utf-8")
        problem = _verify_corpus(str(tmp))
        if problem is not None:
            raise SemprobeError(f"WordNet built from {source} does not load: {problem}")
        if dest.exists():
            # A directory cannot be replaced in one rename: move the broken one aside first.
            old = corpora / f".wordnet.old.{uuid.uuid4().hex}"
            os.rename(dest, old)
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except OSError as exc:
        raise SemprobeError(f"cannot build {dest}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def setup_wordnet(
    target: Path | None = None,
    source: Path = Path("/usr/share/wordnet"),
    allow_download: bool = True,
) -> str:
    """Make WordNet 3.0 readable by NLTK under ``target/corpora/wordnet``.

    The database files are copied from ``source`` (Debian's ``wordnet-base`` and
    ``wordnet-sense-index`` packages) into a temporary directory beside the destination, the
    missing ``lexnames`` file is written, the result is loaded with NLTK and checked, and only
    then renamed into place, so an interrupted setup never leaves a half corpus. Where ``source``
    lacks files and ``allow_download`` is true, ``nltk.download('wordnet')`` is tried instead.
    A corpus that already loads is left as it is. ``target`` is added to ``nltk.data.path`` of
    this process.

    Parameters
    ----------
    target
        NLTK data directory. Default: the first entry of ``NLTK_DATA``, else ``~/nltk_data``.
    source
        Directory holding ``data.noun``, ``index.noun``, ``index.sense``, ... of WordNet 3.0.
    allow_download
        Whether to fall back on ``nltk.download`` when ``source`` is missing or incomplete.

    Returns
    -------
    str
        What was done, and the ``NLTK_DATA`` to export if NLTK does not search ``target``.

    Raises
    ------
    SemprobeError
        If the source is incomplete and downloading is not allowed or fails, if ``target``
        is not writable, or if the built corpus does not load.
    """
    target = (Path(target) if target is not None else _default_nltk_target()).expanduser()
    target = target.absolute()
    # A fresh process finds the corpus only where NLTK searches by default (or NLTK_DATA says).
    found_by_default = _on_nltk_path(target) and str(target) not in _ADDED_PATHS
    # NLTK refuses to read outside nltk.data.path, so the target joins it before any check.
    added = _add_to_nltk_path(target)
    try:
        action = _setup_in(target, Path(source).expanduser(), allow_download)
    except BaseException:
        if added:
            _remove_from_nltk_path(target)
        raise
    if found_by_default:
        return f"{action}; NLTK finds it."
    return f"{action}; NLTK does not search there by default: export NLTK_DATA={target}"


def _setup_in(target: Path, source: Path, allow_download: bool) -> str:
    corpora = target / "corpora"
    dest = corpora / "wordnet"
    existing = _find_corpus(target)
    if existing is not None:
        problem = _verify_corpus(existing)
        if problem is None:
            return f"WordNet already set up in {corpora}"
        if (corpora / "wordnet.zip").is_file():
            # NLTK prefers the zip, so a directory built beside it would never be read.
            raise SemprobeError(
                f"{corpora / 'wordnet.zip'} does not load ({problem}): remove it and run again"
            )
    missing = [name for name in _CORPUS_FILES if not (source / name).is_file()]
    if not missing:
        ensure_writable_dir(corpora)
        _build_from_source(source, corpora, dest)
        return f"WordNet 3.0 copied from {source} to {dest} (lexnames written)"
    if allow_download:
        return _download_wordnet(target, source, missing)
    what = "does not exist" if not source.is_dir() else f"lacks {_named_list(missing)}"
    raise SemprobeError(
        f"WordNet source {source} {what}: install the Debian packages wordnet-base and "
        "wordnet-sense-index, or allow the NLTK download"
    )


def _download_wordnet(target: Path, source: Path, missing: Sequence[str]) -> str:
    import nltk

    why = "not found" if not source.is_dir() else f"lacks {_named_list(list(missing))}"
    try:
        ok = nltk.download("wordnet", download_dir=str(target), quiet=True, raise_on_error=True)
    except Exception as exc:  # network and archive errors come in many types
        raise SemprobeError(
            f"WordNet source {source} {why} and nltk.download('wordnet') failed: {exc}"
        ) from None
    found = _find_corpus(target)
    problem = "nothing was downloaded" if not ok or found is None else _verify_corpus(found)
    if problem is not None:
        raise SemprobeError(
            f"WordNet source {source} {why} and nltk.download('wordnet') failed: {problem}"
        )
    return f"WordNet source {source} {why}; downloaded WordNet with NLTK into {target}"


def get_wordnet() -> Any:
    """NLTK's WordNet reader, loaded.

    Returns
    -------
    nltk.corpus.reader.wordnet.WordNetCorpusReader
        ``nltk.corpus.wordnet``, loaded.

    Raises
    ------
    SemprobeError
        ``WordNet is not set up: run `semprobe wordnet setup```, if NLTK cannot load it.
    """
    from nltk.corpus import wordnet
    from nltk.corpus.reader.wordnet import WordNetError

    try:
        wordnet.ensure_loaded()
    except LookupError:
        raise SemprobeError(_NOT_SET_UP) from None
    except (OSError, ValueError, AssertionError, WordNetError) as exc:
        # A corpus directory exists but is broken (e.g. no lexnames file).
        raise SemprobeError(f"{_NOT_SET_UP} ({type(exc).__name__}: {exc})") from None
    return wordnet


def wordnet_available() -> bool:
    """Whether :func:`get_wordnet` succeeds.

    Returns
    -------
    bool
        ``True`` if NLTK can load WordNet.
    """
    try:
        get_wordnet()
    except SemprobeError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Class -> synset
# --------------------------------------------------------------------------------------------

#: Hand-checked WordNet 3.0 senses of the CIFAR-100 and CIFAR-10 class names: the sense that
#: matches the images, which often is not the first sense of the word.
CURATED_SYNSETS: dict[str, str] = {
    # CIFAR-100, grouped by coarse class.
    # aquatic_mammals
    "beaver": "beaver.n.07",  # the rodent (beaver.n.01 is its fur)
    "dolphin": "dolphin.n.02",  # the toothed whale (n.01 is the dolphinfish)
    "otter": "otter.n.02",  # the animal (n.01 is its fur)
    "seal": "seal.n.09",  # the pinniped (n.01 is sealing wax)
    "whale": "whale.n.02",  # the cetacean (n.01 is a very large person)
    # fish
    "aquarium_fish": "fish.n.01",  # WordNet has no synset for fish kept in aquariums
    "flatfish": "flatfish.n.02",  # the fish (n.01 is its flesh)
    "ray": "ray.n.07",  # the cartilaginous fish (n.01 is a beam of light)
    "shark": "shark.n.01",
    "trout": "trout.n.02",  # the fish (n.01 is its flesh)
    # flowers
    "orchid": "orchid.n.01",
    "poppy": "poppy.n.01",
    "rose": "rose.n.01",
    "sunflower": "sunflower.n.01",
    "tulip": "tulip.n.01",
    # food_containers
    "bottle": "bottle.n.01",
    "bowl": "bowl.n.01",  # the vessel
    "can": "can.n.01",  # the tin can
    "cup": "cup.n.01",  # the drinking vessel (n.02 is a quantity)
    "plate": "plate.n.04",  # the dish (n.01 is home plate)
    # fruit_and_vegetables: the food senses, so that they group under produce.n.01
    "apple": "apple.n.01",
    "mushroom": "mushroom.n.05",  # edible fungus as food (n.02 is the organism)
    "orange": "orange.n.01",
    "pear": "pear.n.01",
    "sweet_pepper": "sweet_pepper.n.02",  # the bell pepper (n.01 is the plant)
    # household_electrical_devices
    "clock": "clock.n.01",
    "keyboard": "computer_keyboard.n.01",  # the images are computer keyboards
    "computer_keyboard": "computer_keyboard.n.01",
    "lamp": "lamp.n.02",  # the piece of furniture holding bulbs, i.e. a table lamp
    "telephone": "telephone.n.01",
    "television": "television_receiver.n.01",  # the set (n.01 is broadcasting)
    # household_furniture
    "bed": "bed.n.01",
    "chair": "chair.n.01",
    "couch": "sofa.n.01",
    "table": "table.n.02",  # the furniture (n.01 is a data table)
    "wardrobe": "wardrobe.n.01",  # the furniture (n.02 is a set of clothes)
    # insects
    "bee": "bee.n.01",
    "beetle": "beetle.n.01",
    "butterfly": "butterfly.n.01",
    "caterpillar": "caterpillar.n.01",  # the larva (n.02 is the tracked vehicle)
    "cockroach": "cockroach.n.01",
    # large_carnivores
    "bear": "bear.n.01",
    "leopard": "leopard.n.02",  # the feline (n.01 is its pelt)
    "lion": "lion.n.01",
    "tiger": "tiger.n.02",  # the feline (n.01 is an audacious person)
    "wolf": "wolf.n.01",
    # large_man-made_outdoor_things
    "bridge": "bridge.n.01",
    "castle": "castle.n.02",  # the fortified building (n.01 is a stately mansion)
    "house": "house.n.01",
    "road": "road.n.01",
    "skyscraper": "skyscraper.n.01",
    # large_natural_outdoor_scenes
    "cloud": "cloud.n.02",  # water or ice in the sky (n.01 is any cloud of particles)
    "forest": "forest.n.02",  # land covered with trees (n.01 is the vegetation)
    "mountain": "mountain.n.01",
    "plain": "plain.n.01",  # the landform
    "sea": "sea.n.01",
    # large_omnivores_and_herbivores
    "camel": "camel.n.01",
    "cattle": "cattle.n.01",
    "chimpanzee": "chimpanzee.n.01",
    "elephant": "elephant.n.01",
    "kangaroo": "kangaroo.n.01",
    # medium_mammals
    "fox": "fox.n.01",
    "porcupine": "porcupine.n.01",
    "possum": "opossum.n.02",  # the American opossum of the images
    "raccoon": "raccoon.n.02",  # the animal (n.01 is its fur)
    "skunk": "skunk.n.04",  # the animal (n.01 is a despicable person)
    # non-insect_invertebrates
    "crab": "crab.n.01",  # the decapod (n.05 is its flesh)
    "lobster": "lobster.n.02",  # the crustacean (n.01 is its flesh)
    "snail": "snail.n.01",
    "spider": "spider.n.01",
    "worm": "worm.n.01",
    # people
    "baby": "baby.n.01",
    "boy": "male_child.n.01",
    "girl": "female_child.n.01",  # the child (girl.n.01 is a young woman)
    "man": "man.n.01",
    "woman": "woman.n.01",
    # reptiles
    "crocodile": "crocodile.n.01",
    "dinosaur": "dinosaur.n.01",
    "lizard": "lizard.n.01",
    "snake": "snake.n.01",
    "turtle": "turtle.n.02",  # the reptile (n.01 is a turtleneck)
    # small_mammals
    "hamster": "hamster.n.01",
    "mouse": "mouse.n.01",  # the rodent (n.04 is the computer mouse)
    "rabbit": "rabbit.n.01",
    "shrew": "shrew.n.02",  # the mammal (n.01 is a nagging woman)
    "squirrel": "squirrel.n.01",
    # trees
    "maple_tree": "maple.n.02",  # the tree (n.01 is its wood)
    "oak_tree": "oak.n.02",  # the tree (n.01 is its wood)
    "palm_tree": "palm.n.03",
    "pine_tree": "pine.n.01",
    "willow_tree": "willow.n.01",
    # vehicles_1
    "bicycle": "bicycle.n.01",
    "bus": "bus.n.01",  # the vehicle (n.02 is a network topology)
    "motorcycle": "motorcycle.n.01",
    "pickup_truck": "pickup.n.01",
    "train": "train.n.01",
    # vehicles_2
    "lawn_mower": "lawn_mower.n.01",
    "rocket": "rocket.n.01",  # the vehicle (n.03 is the salad plant)
    "streetcar": "streetcar.n.01",
    "tank": "tank.n.01",  # the armoured vehicle (n.02 is a container)
    "tractor": "tractor.n.01",
    # CIFAR-10
    "airplane": "airplane.n.01",
    "automobile": "car.n.01",
    "bird": "bird.n.01",
    "cat": "cat.n.01",
    "deer": "deer.n.01",
    "dog": "dog.n.01",
    "frog": "frog.n.01",
    "horse": "horse.n.01",
    "ship": "ship.n.01",
    "truck": "truck.n.01",
}

_IMAGENET_WNID = re.compile(r"n(\d{8})")


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


@functools.lru_cache(maxsize=4096)
def _default_synset(class_name: str) -> Synset:
    """Curated table, ImageNet offset, or first noun sense, in that order."""
    from nltk.corpus.reader.wordnet import WordNetError

    key = _normalise(class_name)
    if key in CURATED_SYNSETS:
        return _synset_by_name(CURATED_SYNSETS[key])
    wn = get_wordnet()
    match = _IMAGENET_WNID.fullmatch(key)
    if match:
        try:
            with warnings.catch_warnings():
                # NLTK warns and returns None for an unknown offset; the error below says more.
                warnings.simplefilter("ignore")
                synset = wn.synset_from_pos_and_offset("n", int(match.group(1)))
        except (WordNetError, ValueError):
            synset = None
        if synset is None:
            raise SemprobeError(
                f"class {class_name!r} looks like an ImageNet WordNet id but no WordNet 3.0 noun "
                f"synset has offset {match.group(1)}; map it in a class,synset overrides CSV"
            )
        return synset
    senses = wn.synsets(key, pos="n")
    if not senses:
        raise SemprobeError(
            f"class {class_name!r} has no WordNet noun synset; map it in a class,synset "
            "overrides CSV (e.g. 'maple_tree,maple.n.02')"
        )
    return senses[0]


@functools.lru_cache(maxsize=32)
def _overrides_cached(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    # Keyed on mtime and size so that an edited file is read again.
    return tuple(_read_csv_file(Path(path), "synset").items())


def _overrides(overrides_csv: Path | str | None) -> dict[str, str]:
    if overrides_csv is None:
        return {}
    path = Path(overrides_csv).expanduser()
    if not path.is_file():
        raise SemprobeError(f"synset overrides CSV not found: {path}")
    stat = path.stat()
    return dict(_overrides_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size))


def class_synsets(
    class_names: Sequence[str], overrides_csv: Path | str | None = None
) -> dict[str, Synset]:
    """Map class names to WordNet noun synsets.

    Each class is looked up, in order, in the ``overrides_csv``, in :data:`CURATED_SYNSETS`
    (all CIFAR-100 and CIFAR-10 classes), as an ImageNet WordNet id (``n01440764``), and finally
    as the first noun sense of the name (spaces become underscores, as in WordNet lemmas).

    Parameters
    ----------
    class_names
        The classes to map.
    overrides_csv
        Optional CSV with header ``class,synset``, e.g. ``maple_tree,maple.n.02``.

    Returns
    -------
    dict[str, nltk.corpus.reader.wordnet.Synset]
        ``class -> synset``, in the order of ``class_names``.

    Raises
    ------
    SemprobeError
        If WordNet is not set up, the overrides CSV is malformed or names an unknown synset,
        or a class has no noun synset (the message suggests the overrides CSV).
    """
    overrides = _overrides(overrides_csv)
    result: dict[str, Synset] = {}
    for name in class_names:
        if name in overrides:
            result[name] = _synset_by_name(overrides[name])
        else:
            result[name] = _default_synset(name)
    return result


# --------------------------------------------------------------------------------------------
# WordNet superclasses and concept labels
# --------------------------------------------------------------------------------------------


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
    class synset, ties broken by comparing the synset names along the paths, so the grouping is
    deterministic. A class whose synset is shallower than ``depth`` is its own group.

    WordNet is deeper under animals than under artifacts, so one depth cannot reproduce the
    CIFAR-100 coarse classes. On the 100 CIFAR-100 classes (with :data:`CURATED_SYNSETS`):

    =====  ======  ==========  ===========================================================
    depth  groups  ARI coarse  largest groups
    =====  ======  ==========  ===========================================================
    5      16      0.11        organism (55), instrumentality (24), produce (5)
    6      25      0.16        animal (45), plant (10), container (9), furnishing (6)
    **7**  **36**  **0.23**    chordate (35), vascular_plant (10), invertebrate (9),
                               furniture (6), wheeled_vehicle (5), 27 singletons
    9      57      0.30        mammal (25), aquatic_vertebrate, reptile, tree (5 each);
                               49 singletons
    =====  ======  ==========  ===========================================================

    The default, :data:`DEFAULT_WORDNET_DEPTH` = 7, keeps three quarters of the classes (73)
    in shared groups and has the best ARI of depths 1-8. Depth 9 scores higher (0.30) by
    splitting animals and plants into mammals, fish, reptiles, insects and trees, but leaves
    almost every artifact alone (49 singletons): ask for ``wordnet:9`` for that view.

    Parameters
    ----------
    class_names
        The classes to group (mapped with :func:`class_synsets`).
    depth
        Ancestor depth, >= 1. ``None``: :data:`DEFAULT_WORDNET_DEPTH`.
    overrides_csv
        Optional ``class,synset`` CSV passed to :func:`class_synsets`.

    Returns
    -------
    dict[str, str]
        ``class -> superclass synset name`` (e.g. ``"woody_plant.n.01"``).
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
        Optional ``class -> group`` reference (e.g. :func:`cifar100_coarse`); compared on the
        classes the two mappings share.

    Returns
    -------
    dict
        ``n_classes``, ``n_groups``, ``sizes`` (group -> size, largest first, then by name),
        ``singletons`` (number of one-class groups) and, with a reference, ``reference_groups``,
        ``n_compared`` and ``ari`` (:func:`sklearn.metrics.adjusted_rand_score`; ``None`` when
        fewer than two classes are shared).
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
        The common hypernym is a concept only if its longest path from the root has at least this
        many edges (``Synset.max_depth()``). The longest path is used because WordNet files
        ``person.n.01`` both under ``causal_agent.n.01`` (depth 3) and ``organism.n.01``
        (depth 6). The default, :data:`DEFAULT_CONCEPT_MIN_DEPTH` = 4, accepts ``artifact.n.01``,
        ``living_thing.n.01`` and ``person.n.01`` and makes classes that share only
        ``entity.n.01``, ``physical_entity.n.01``, ``object.n.01``, ``whole.n.02`` (e.g. an
        animal and an artifact) or ``matter.n.03`` "mixed". Raise it (e.g. to 6: ``animal.n.01``,
        ``plant.n.02``, ``conveyance.n.03``, ``furniture.n.01``) for stricter labels.
    overrides_csv
        Optional ``class,synset`` CSV passed to :func:`class_synsets`.

    Returns
    -------
    tuple[str, int]
        The lowest common hypernym (the deepest shared ancestor, as in NLTK's
        ``lowest_common_hypernyms``) and its ``min_depth()``: ``("tree.n.01", 9)`` for maple,
        oak, pine and willow trees. A single class gives its own synset. ``("mixed", depth)``
        when the common hypernym is shallower than ``min_depth`` (depth -1 if there is none).

    Raises
    ------
    SemprobeError
        If ``class_names`` is empty, or as :func:`class_synsets`.
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
