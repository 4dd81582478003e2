"""WordNet 3.0 for NLTK: build its corpus directory from Debian's files, and load it.

NLTK reads WordNet only from ``<NLTK_DATA>/corpora/wordnet``. :func:`setup_wordnet` builds that
directory from the database of Debian's ``wordnet-base`` and ``wordnet-sense-index`` packages
(writing the ``lexnames`` file they lack), or downloads it with NLTK where that database is
absent. See ``docs/wordnet.md``.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semprobe.atomic import atomic_directory, remove_dead_leftovers
from semprobe.errors import SemprobeError
from semprobe.wordnet.tables import named_list

__all__ = ["LEXNAMES", "get_wordnet", "setup_wordnet", "wordnet_available"]

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


def _build_from_source(source: Path, dest: Path) -> None:
    """Copy the database beside ``dest``, write lexnames, check that it loads, swap it in."""
    remove_dead_leftovers(dest, "build")  # partial corpora of killed set-ups
    with atomic_directory(dest, tag="build", what="the WordNet corpus") as work:
        for name in _CORPUS_FILES:
            shutil.copyfile(source / name, work / name)
        (work / "lexnames").write_text(_lexnames_text(), encoding="utf-8")
        problem = _verify_corpus(str(work))
        if problem is not None:
            raise SemprobeError(f"WordNet built from {source} does not load: {problem}")


def setup_wordnet(
    target: Path | None = None,
    source: Path = Path("/usr/share/wordnet"),
    allow_download: bool = True,
) -> str:
    """Make WordNet 3.0 readable by NLTK under ``target/corpora/wordnet``.

    The corpus is built from ``source`` beside the destination, checked with NLTK and only then
    swapped into place (:func:`semprobe.atomic.atomic_directory`), so an interrupted set-up never
    leaves a half corpus. A corpus that already loads is left as it is; where ``source`` is
    incomplete, ``nltk.download('wordnet')`` is tried if allowed. ``target`` joins this
    process's ``nltk.data.path``.

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
        _build_from_source(source, dest)
        return f"WordNet 3.0 copied from {source} to {dest} (lexnames written)"
    if allow_download:
        return _download_wordnet(target, source, missing)
    what = "does not exist" if not source.is_dir() else f"lacks {named_list(missing)}"
    raise SemprobeError(
        f"WordNet source {source} {what}: install the Debian packages wordnet-base and "
        "wordnet-sense-index, or allow the NLTK download"
    )


def _download_wordnet(target: Path, source: Path, missing: Sequence[str]) -> str:
    import nltk

    why = "not found" if not source.is_dir() else f"lacks {named_list(list(missing))}"
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
    """Whether :func:`get_wordnet` succeeds, i.e. NLTK can load WordNet."""
    try:
        get_wordnet()
    except SemprobeError:
        return False
    return True
