"""Superclass sources, the CIFAR-100 coarse table and WordNet concepts, on the real WordNet 3.0."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semprobe.errors import SemprobeError
from semprobe.wordnet import (
    CIFAR10_CLASSES,
    DEFAULT_WORDNET_DEPTH,
    LEXNAMES,
    SuperclassSource,
    cifar100_coarse,
    class_synsets,
    concept_label,
    curated_synsets,
    get_wordnet,
    grouping_report,
    parse_superclass_source,
    read_superclass_csv,
    setup_wordnet,
    superclasses_from_source,
    wordnet_available,
    wordnet_superclasses,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared/data/cifar100-real"
# The documented default source: Debian's wordnet-base and wordnet-sense-index packages.
WORDNET_SOURCE: Path = inspect.signature(setup_wordnet).parameters["source"].default

COARSE_NAMES = {
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
}
TREES = ["maple_tree", "oak_tree", "pine_tree", "willow_tree"]


@pytest.fixture(scope="session")
def wordnet_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A WordNet corpus built from the Debian database into a fresh NLTK data directory.

    A broken ``corpora/wordnet`` is planted first, so the build must replace it.
    """
    if not (WORDNET_SOURCE / "data.noun").is_file():
        pytest.skip(
            f"WordNet 3.0 database not found at {WORDNET_SOURCE} "
            "(Debian packages wordnet-base and wordnet-sense-index)"
        )
    target = tmp_path_factory.mktemp("nltk_data")
    broken = target / "corpora" / "wordnet"
    broken.mkdir(parents=True)
    (broken / "data.noun").write_text("not WordNet\n", encoding="utf-8")
    message = setup_wordnet(target)
    return target, message


@pytest.fixture(scope="session")
def wn(wordnet_built: tuple[Path, str]) -> Any:
    return get_wordnet()


def _ancestor_names(synset: Any) -> set[str]:
    return {s.name() for path in synset.hypernym_paths() for s in path}


# --------------------------------------------------------------------------------------------
# WordNet setup
# --------------------------------------------------------------------------------------------


def test_setup_builds_a_corpus_that_nltk_loads(wordnet_built: tuple[Path, str], wn: Any) -> None:
    import nltk

    target, message = wordnet_built
    corpus = target / "corpora" / "wordnet"
    assert "copied" in message
    assert f"export NLTK_DATA={target}" in message
    assert str(target) in nltk.data.path
    # The planted broken corpus was replaced and no temporary directory is left behind.
    assert sorted(p.name for p in (target / "corpora").iterdir()) == ["wordnet"]
    assert (corpus / "data.noun").stat().st_size > 10_000_000
    assert (corpus / "lexnames").is_file()
    assert (corpus / "index.sense").is_file()

    dog = wn.synset("dog.n.01")
    assert {s.name() for s in dog.hypernyms()} == {"canine.n.02", "domestic_animal.n.01"}
    assert dog.lexname() == "noun.animal"
    assert wn.synset_from_pos_and_offset("n", 2084071) == dog
    assert wn.synset("tree.n.01").lexname() == "noun.plant"
    assert wn.synset("run.v.01").lexname() == "verb.motion"
    assert wn.get_version() == "3.0"
    assert wordnet_available()


def test_setup_again_keeps_the_existing_corpus(wordnet_built: tuple[Path, str]) -> None:
    target, _ = wordnet_built
    before = (target / "corpora" / "wordnet" / "lexnames").stat().st_ino
    message = setup_wordnet(target)
    assert message.startswith("WordNet already set up")
    assert (target / "corpora" / "wordnet" / "lexnames").stat().st_ino == before


def test_lexnames_agree_with_the_database(wordnet_built: tuple[Path, str]) -> None:
    target, _ = wordnet_built
    corpus = target / "corpora" / "wordnet"
    lines = (corpus / "lexnames").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(LEXNAMES) == 45
    assert lines[0] == "00\tadj.all\t3"
    assert lines[3] == "03\tnoun.Tops\t1"
    assert lines[29] == "29\tverb.body\t2"
    assert lines[44] == "44\tadj.ppl\t3"
    category = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
    used: set[int] = set()
    for suffix in ("noun", "verb", "adj", "adv"):
        with open(corpus / f"data.{suffix}", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(" "):
                    continue  # licence header
                _, lex_filenum, ss_type = line.split(" ", 3)[:3]
                number = int(lex_filenum)
                used.add(number)
                # Every synset sits in a lexicographer file of its own part of speech.
                assert LEXNAMES[number].split(".")[0] == category[ss_type], line[:40]
    assert used == set(range(45))


def test_a_build_that_does_not_load_keeps_the_old_directory(tmp_path: Path) -> None:
    if not (WORDNET_SOURCE / "data.noun").is_file():
        pytest.skip(f"WordNet 3.0 database not found at {WORDNET_SOURCE}")
    source = tmp_path / "source"
    source.mkdir()
    for path in WORDNET_SOURCE.iterdir():
        (source / path.name).symlink_to(path)
    (source / "index.sense").unlink()
    (source / "index.sense").write_text("", encoding="utf-8")  # present but truncated
    corpora = tmp_path / "nltk_data" / "corpora"
    (corpora / "wordnet").mkdir(parents=True)
    (corpora / "wordnet" / "data.noun").write_text("old\n", encoding="utf-8")
    with pytest.raises(SemprobeError, match=r"does not load: .*truncated index\.sense"):
        setup_wordnet(tmp_path / "nltk_data", source=source, allow_download=False)
    # The old directory is still in place, and no temporary build is left beside it.
    assert (corpora / "wordnet" / "data.noun").read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in corpora.iterdir()) == ["wordnet"]


def test_setup_without_source_or_download_fails_cleanly(tmp_path: Path) -> None:
    import nltk

    target = tmp_path / "nltk_data"
    with pytest.raises(SemprobeError, match="wordnet-base and wordnet-sense-index"):
        setup_wordnet(target, source=tmp_path / "no-wordnet", allow_download=False)
    assert str(target) not in nltk.data.path
    assert not (target / "corpora" / "wordnet").exists()


def test_setup_refuses_to_hide_behind_a_damaged_zip(tmp_path: Path) -> None:
    corpora = tmp_path / "nltk_data" / "corpora"
    corpora.mkdir(parents=True)
    with zipfile.ZipFile(corpora / "wordnet.zip", "w") as zf:
        zf.writestr("wordnet/", "")
        zf.writestr("wordnet/data.noun", "not WordNet\n")
    with pytest.raises(SemprobeError, match=r"wordnet\.zip does not load .*remove it"):
        setup_wordnet(tmp_path / "nltk_data", source=tmp_path / "unused")


def test_default_target_follows_nltk_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from semprobe.wordnet import install

    monkeypatch.setenv("NLTK_DATA", f"{os.pathsep}{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    assert install._default_nltk_target() == tmp_path / "a"
    monkeypatch.delenv("NLTK_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert install._default_nltk_target() == tmp_path / "nltk_data"


def test_get_wordnet_without_a_corpus_says_how_to_set_it_up(tmp_path: Path) -> None:
    # A fresh interpreter: this one has WordNet loaded already.
    script = textwrap.dedent(
        """
        import nltk
        try:
            nltk.data.find("corpora/wordnet")
            print("FOUND")
        except LookupError:
            from semprobe.errors import SemprobeError
            from semprobe.wordnet import get_wordnet, wordnet_available
            print(wordnet_available())
            try:
                get_wordnet()
            except SemprobeError as exc:
                print(exc)
        """
    )
    env = {**os.environ, "HOME": str(tmp_path), "NLTK_DATA": str(tmp_path / "empty")}
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    if out == ["FOUND"]:
        pytest.skip("a system-wide NLTK WordNet exists on this machine")
    assert out == ["False", "WordNet is not set up: run `semprobe wordnet setup`"]


# --------------------------------------------------------------------------------------------
# Superclass sources and CSV tables
# --------------------------------------------------------------------------------------------


def test_parse_superclass_source() -> None:
    assert parse_superclass_source("coarse") == SuperclassSource("coarse")
    assert parse_superclass_source("wordnet") == SuperclassSource("wordnet")
    assert parse_superclass_source("wordnet:5") == SuperclassSource("wordnet", depth=5)
    assert parse_superclass_source("file:my/groups.csv") == SuperclassSource(
        "file", path=Path("my/groups.csv")
    )
    assert str(parse_superclass_source("wordnet:5")) == "wordnet:5"
    with pytest.raises(SemprobeError) as err:
        parse_superclass_source("imagenet")
    text = str(err.value)
    assert "'imagenet'" in text
    assert all(form in text for form in ("coarse", "wordnet:DEPTH", "file:PATH.csv"))
    for bad in ("wordnet:0", "wordnet:x", "wordnet:-2"):
        with pytest.raises(SemprobeError, match=">= 1"):
            parse_superclass_source(bad)
    with pytest.raises(SemprobeError, match=r"\.csv"):
        parse_superclass_source("file:groups.txt")


def test_cifar100_coarse_table() -> None:
    coarse = cifar100_coarse()
    assert len(coarse) == 100
    assert set(coarse.values()) == COARSE_NAMES
    assert all(list(coarse.values()).count(group) == 5 for group in COARSE_NAMES)
    assert coarse["aquarium_fish"] == "fish"
    assert coarse["maple_tree"] == "trees"
    assert coarse["lawn_mower"] == "vehicles_2"
    assert coarse["pickup_truck"] == "vehicles_1"
    assert coarse["mushroom"] == "fruit_and_vegetables"


def test_cifar100_coarse_table_equals_the_real_dataset() -> None:
    real = SHARED_CIFAR / "superclasses.csv"
    if not real.is_file():
        pytest.skip(f"real CIFAR-100 subset not found at {SHARED_CIFAR}")
    class_dirs = sorted(p.name for p in (SHARED_CIFAR / "train").iterdir() if p.is_dir())
    assert read_superclass_csv(real, class_dirs) == cifar100_coarse()
    assert sorted(cifar100_coarse()) == class_dirs


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_superclass_csv(tmp_path: Path) -> None:
    csv_path = _write(
        tmp_path / "groups.csv",
        "\ufeffclass,superclass\ncat,pet\ndog,pet\ncat,pet\nlion,wild\n\nunused,other\n",
    )
    assert read_superclass_csv(csv_path, ["lion", "cat", "dog"]) == {
        "lion": "wild",
        "cat": "pet",
        "dog": "pet",
    }


def test_read_superclass_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(SemprobeError, match="not found"):
        read_superclass_csv(tmp_path / "absent.csv", ["cat"])
    bad_header = _write(tmp_path / "header.csv", "name,group\ncat,pet\n")
    with pytest.raises(SemprobeError, match="expected header 'class,superclass'"):
        read_superclass_csv(bad_header, ["cat"])
    with pytest.raises(SemprobeError, match="expected header"):
        read_superclass_csv(_write(tmp_path / "empty.csv", ""), ["cat"])
    conflict = _write(tmp_path / "conflict.csv", "class,superclass\ncat,pet\ncat,wild\n")
    with pytest.raises(SemprobeError, match=r"cat \(pet vs wild\)"):
        read_superclass_csv(conflict, ["cat"])
    blank = _write(tmp_path / "blank.csv", "class,superclass\ncat,\n")
    with pytest.raises(SemprobeError, match="row 2"):
        read_superclass_csv(blank, ["cat"])

    small = _write(tmp_path / "small.csv", "class,superclass\ncat,pet\n")
    with pytest.raises(SemprobeError, match="1 class") as err:
        read_superclass_csv(small, ["cat", "zebra"])
    assert "zebra" in str(err.value)
    many = [f"class{i:02d}" for i in range(15)]
    with pytest.raises(SemprobeError) as err:
        read_superclass_csv(small, ["cat", *many])
    message = str(err.value)
    assert "15 class(es) missing" in message
    assert "class00" in message and "class09" in message and "class10" not in message
    assert message.endswith("and 5 more")
    assert "\n" not in message


def test_superclasses_from_source(tmp_path: Path) -> None:
    own = cifar100_coarse()
    assert superclasses_from_source("coarse", ["oak_tree", "bus"], dataset_superclasses=own) == {
        "oak_tree": "trees",
        "bus": "vehicles_1",
    }
    with pytest.raises(SemprobeError, match="dragon"):
        superclasses_from_source("coarse", ["oak_tree", "dragon"], dataset_superclasses=own)
    csv_path = _write(tmp_path / "g.csv", "class,superclass\noak_tree,plant\n")
    assert superclasses_from_source(f"file:{csv_path}", ["oak_tree"]) == {"oak_tree": "plant"}


def test_coarse_is_the_datasets_own_table() -> None:
    """``coarse`` never falls back on CIFAR-100's table: a dataset without one is named."""
    own = {"disk": "round", "ring": "round", "square": "angular"}
    assert superclasses_from_source("coarse", ["ring", "square"], dataset_superclasses=own) == {
        "ring": "round",
        "square": "angular",
    }
    with pytest.raises(SemprobeError, match="dataset 'cifar10' has no coarse superclasses") as err:
        superclasses_from_source("coarse", list(CIFAR10_CLASSES), dataset="cifar10")
    assert "\n" not in str(err.value)
    with pytest.raises(SemprobeError, match="this dataset has no coarse superclasses"):
        superclasses_from_source("coarse", ["oak_tree"])


# --------------------------------------------------------------------------------------------
# Class -> synset
# --------------------------------------------------------------------------------------------


def test_every_cifar_class_resolves_to_a_noun_synset(wn: Any) -> None:
    names = [*cifar100_coarse(), *CIFAR10_CLASSES]
    assert set(names) <= set(curated_synsets())
    synsets = class_synsets(names)
    assert list(synsets) == names
    assert all(s.pos() == "n" for s in synsets.values())
    # Distinct classes are distinct concepts, except CIFAR-10 names that CIFAR-100 lacks.
    assert len({synsets[n] for n in cifar100_coarse()}) == 100


@pytest.mark.parametrize(
    ("name", "synset", "ancestor"),
    [
        ("mouse", "mouse.n.01", "rodent.n.01"),
        ("ray", "ray.n.07", "fish.n.01"),
        ("maple_tree", "maple.n.02", "tree.n.01"),
        ("oak_tree", "oak.n.02", "tree.n.01"),
        ("palm_tree", "palm.n.03", "tree.n.01"),
        ("pine_tree", "pine.n.01", "tree.n.01"),
        ("willow_tree", "willow.n.01", "tree.n.01"),
        ("sweet_pepper", "sweet_pepper.n.02", "pepper.n.04"),
        ("sweet_pepper", "sweet_pepper.n.02", "vegetable.n.01"),
        ("aquarium_fish", "fish.n.01", "aquatic_vertebrate.n.01"),
        ("trout", "trout.n.02", "fish.n.01"),
        ("seal", "seal.n.09", "pinniped_mammal.n.01"),
        ("crab", "crab.n.01", "crustacean.n.01"),
        ("lobster", "lobster.n.02", "crustacean.n.01"),
        ("plain", "plain.n.01", "land.n.04"),
        ("tank", "tank.n.01", "military_vehicle.n.01"),
        ("bus", "bus.n.01", "public_transport.n.01"),
        ("pickup_truck", "pickup.n.01", "truck.n.01"),
        ("lawn_mower", "lawn_mower.n.01", "garden_tool.n.01"),
        ("keyboard", "computer_keyboard.n.01", "device.n.01"),
        ("computer_keyboard", "computer_keyboard.n.01", "device.n.01"),
        ("cattle", "cattle.n.01", "bovine.n.01"),
        ("whale", "whale.n.02", "aquatic_mammal.n.01"),
        ("tiger", "tiger.n.02", "feline.n.01"),
        ("television", "television_receiver.n.01", "electronic_equipment.n.01"),
        ("table", "table.n.02", "furniture.n.01"),
        ("girl", "female_child.n.01", "person.n.01"),
        ("automobile", "car.n.01", "motor_vehicle.n.01"),
    ],
)
def test_tricky_classes_get_the_image_sense(wn: Any, name: str, synset: str, ancestor: str) -> None:
    got = class_synsets([name])[name]
    assert got.name() == synset
    assert ancestor in _ancestor_names(got)


def test_imagenet_ids_and_first_noun_sense(wn: Any) -> None:
    got = class_synsets(["n01440764", "n02084071", "golden retriever", "Zebra"])
    assert got["n01440764"].name() == "tench.n.01"
    assert got["n02084071"].name() == "dog.n.01"
    assert got["golden retriever"].name() == "golden_retriever.n.01"
    assert got["Zebra"].name() == "zebra.n.01"


def test_unknown_class_names_the_class_and_the_override(wn: Any) -> None:
    with pytest.raises(SemprobeError, match=r"'flibbertigibbet_x'.*given with --synsets FILE"):
        class_synsets(["cat", "flibbertigibbet_x"])
    with pytest.raises(SemprobeError, match="n99999999"):
        class_synsets(["n99999999"])


def test_overrides_csv(wn: Any, tmp_path: Path) -> None:
    overrides = _write(
        tmp_path / "over.csv", "class,synset\nmaple_tree,maple.n.01\nblorp,dog.n.01\n"
    )
    got = class_synsets(["maple_tree", "blorp", "oak_tree"], overrides)
    assert {k: v.name() for k, v in got.items()} == {
        "maple_tree": "maple.n.01",
        "blorp": "dog.n.01",
        "oak_tree": "oak.n.02",
    }
    bad = _write(tmp_path / "bad.csv", "class,synset\ncat,cat.n.99\n")
    with pytest.raises(SemprobeError, match=r"cat\.n\.99"):
        class_synsets(["cat"], bad)
    with pytest.raises(SemprobeError, match="expected header 'class,synset'"):
        class_synsets(["cat"], _write(tmp_path / "h.csv", "class,superclass\ncat,x\n"))
    with pytest.raises(SemprobeError, match=r"synsets file .*absent\.csv does not exist"):
        class_synsets(["cat"], tmp_path / "absent.csv")
    with pytest.raises(SemprobeError, match=r"'maple' is not a noun synset name"):
        class_synsets(["cat"], _write(tmp_path / "n.csv", "class,synset\nmaple_tree,maple\n"))
    # Names are matched as written and as WordNet lemmas.
    spaced = _write(tmp_path / "s.csv", "class,synset\nMaple Tree,maple.n.01\n")
    assert class_synsets(["maple_tree"], spaced)["maple_tree"].name() == "maple.n.01"


# --------------------------------------------------------------------------------------------
# WordNet superclasses and concept labels
# --------------------------------------------------------------------------------------------


def test_wordnet_grouping_of_cifar100(wn: Any) -> None:
    coarse = cifar100_coarse()
    names = list(coarse)
    grouping = wordnet_superclasses(names)
    assert grouping == wordnet_superclasses(names, depth=DEFAULT_WORDNET_DEPTH)
    report = grouping_report(grouping, coarse)
    assert report["n_classes"] == report["n_compared"] == 100
    assert report["reference_groups"] == 20
    assert report["n_groups"] == 36
    assert sum(report["sizes"].values()) == 100
    assert report["ari"] > 0.2
    assert grouping["oak_tree"] == grouping["pine_tree"] == grouping["orchid"]
    assert grouping["bee"] == grouping["crab"]

    fine = wordnet_superclasses(names, depth=9)
    assert {fine[t] for t in TREES} == {"tree.n.01"}
    assert fine["shark"] == fine["trout"] == "aquatic_vertebrate.n.01"
    assert grouping_report(fine, coarse)["ari"] > report["ari"]


def test_wordnet_grouping_depth_edge_cases(wn: Any) -> None:
    # Deeper than every class: each class is its own group, named by its synset.
    deep = wordnet_superclasses(["mouse", "sea"], depth=40)
    assert deep == {"mouse": "mouse.n.01", "sea": "sea.n.01"}
    assert set(wordnet_superclasses(["mouse", "sea", "bus"], depth=1).values()) == {
        "physical_entity.n.01"
    }
    with pytest.raises(SemprobeError, match=">= 1"):
        wordnet_superclasses(["mouse"], depth=0)


def test_grouping_report_against_a_reference() -> None:
    mapping = {"a": "x", "b": "x", "c": "y", "d": "z"}
    report = grouping_report(mapping, {"a": 1, "b": 1, "c": 2, "d": 3})  # type: ignore[dict-item]
    assert report["n_groups"] == 3
    assert report["sizes"] == {"x": 2, "y": 1, "z": 1}
    assert report["singletons"] == 2
    assert report["ari"] == pytest.approx(1.0)
    assert "ari" not in grouping_report(mapping)
    assert grouping_report(mapping, {"a": "q"})["ari"] is None


def test_concept_label_of_the_trees(wn: Any) -> None:
    assert concept_label(TREES) == ("tree.n.01", 9)
    assert concept_label([*TREES, "palm_tree"]) == ("tree.n.01", 9)


def test_concept_label_of_related_and_single_classes(wn: Any) -> None:
    assert concept_label(["cat", "dog"])[0] == "carnivore.n.01"
    assert concept_label(["man", "woman", "boy", "girl", "baby"]) == ("person.n.01", 3)
    assert concept_label(["aquarium_fish", "flatfish", "ray", "shark", "trout"])[0] == "fish.n.01"
    assert concept_label(["mouse"]) == ("mouse.n.01", 12)
    assert concept_label(["sea", "sea"])[0] == "sea.n.01"


def test_concept_label_of_unrelated_classes_is_mixed(wn: Any) -> None:
    assert concept_label(["apple", "bus"])[0] == "mixed"
    assert concept_label(["dog", "chair"])[0] == "mixed"
    assert concept_label(["sea", "bus", "cloud"]) == ("mixed", 1)
    # A stricter threshold turns a weak shared concept into "mixed" as well.
    assert concept_label(["bridge", "castle", "road"]) == ("artifact.n.01", 4)
    assert concept_label(["bridge", "castle", "road"], min_depth=6)[0] == "mixed"
    with pytest.raises(SemprobeError, match="at least one class"):
        concept_label([])


# --------------------------------------------------------------------------------------------
# Properties of the WordNet mapping (hypothesis), and --synsets end to end
# --------------------------------------------------------------------------------------------

CIFAR100_NAMES = sorted(cifar100_coarse())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(CIFAR100_NAMES), min_size=2, max_size=12, unique=True),
    st.integers(1, 10),
)
def test_deeper_wordnet_groups_refine_shallower_ones(wn: Any, names: list[str], depth: int) -> None:
    """Two classes with one ancestor at depth d + 1 share their ancestor at depth d, and every
    group is an ancestor (or the synset) of each of its classes."""
    shallow = wordnet_superclasses(names, depth=depth)
    deep = wordnet_superclasses(names, depth=depth + 1)
    synsets = class_synsets(names)
    for a in names:
        assert shallow[a] in _ancestor_names(synsets[a])
        for b in names:
            if deep[a] == deep[b]:
                assert shallow[a] == shallow[b], (a, b)
    assert wordnet_superclasses(list(reversed(names)), depth=depth) == shallow  # order-free


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(CIFAR100_NAMES),
    st.sampled_from(["dog.n.01", "maple.n.02", "bus.n.01", "whale.n.02", "rose.n.01"]),
    st.integers(1, 9),
)
def test_an_override_moves_a_class_to_its_synsets_ancestor(
    wn: Any, tmp_path_factory: pytest.TempPathFactory, name: str, synset: str, depth: int
) -> None:
    overrides = tmp_path_factory.mktemp("syn") / "synsets.csv"
    overrides.write_text(f"class,synset\n{name},{synset}\n")
    names = [name, "oak_tree"] if name != "oak_tree" else [name, "bus"]
    got = wordnet_superclasses(names, depth=depth, overrides_csv=overrides)
    path = min(wn.synset(synset).hypernym_paths(), key=lambda p: (len(p), [s.name() for s in p]))
    assert got[name] == (path[depth] if depth < len(path) else path[-1]).name()
    # The other class is untouched.
    assert got[names[1]] == wordnet_superclasses([names[1]], depth=depth)[names[1]]


def _imagefolder(root: Path, classes: list[str], per_split: dict[str, int]) -> Path:
    from PIL import Image

    from semprobe import synthetic

    for split, count in per_split.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            images = synthetic.generate([c * 5] * count, seed=c + (0 if split == "train" else 9))
            for i, image in enumerate(images):
                Image.fromarray(image).save(folder / f"{i}.png")
    return root


def test_synsets_file_on_the_command_line_and_in_a_study(wn: Any, tmp_path: Path) -> None:
    """A class WordNet does not know is mapped by --synsets (the command) and by the study
    file's synsets key (relative to the file); without it the error says how."""
    from semprobe.cli import main
    from semprobe.rundir import Run
    from semprobe.studies import load_study
    from tests.conftest import save_tiny

    data = _imagefolder(
        tmp_path / "data", ["maple_tree", "oak_tree", "blorp"], {"train": 6, "test": 3}
    )
    ckpt = save_tiny(tmp_path / "m.pt")
    common = [
        "relevance",
        str(ckpt),
        "--dataset",
        f"imagefolder:{data}",
        "--superclasses",
        "wordnet:9",
        "--k",
        "2",
        "--k-max",
        "2",
        "--permutations",
        "20",
        "--epochs",
        "5",
        "--quiet",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main([*common, "--out", str(tmp_path / "no")]) == 2
    (tmp_path / "synsets.csv").write_text("class,synset\nblorp,dog.n.01\n")
    assert (
        main([*common, "--out", str(tmp_path / "run"), "--synsets", str(tmp_path / "synsets.csv")])
        == 0
    )
    summary = Run(tmp_path / "run").model("m").relevance_summary()
    assert summary is not None and summary["settings"]["synsets"] == str(tmp_path / "synsets.csv")
    classes = Run(tmp_path / "run").superclass_of
    dog = wordnet_superclasses(["dog"], depth=9)["dog"]
    assert classes == {"maple_tree": "tree.n.01", "oak_tree": "tree.n.01", "blorp": dog}

    study_dir = tmp_path / "studies"
    study_dir.mkdir()
    (study_dir / "groups.csv").write_text("class,synset\nblorp,dog.n.01\n")
    (study_dir / "s.toml").write_text(
        f'dataset = "imagefolder:{data}"\n[checkpoints]\nm = "{ckpt}"\n'
        '[relevance]\nsuperclasses = "wordnet:9"\nsynsets = "groups.csv"\n'
    )
    study, _ = load_study(study_dir / "s.toml")
    assert study.relevance.synsets == str(study_dir / "groups.csv")
    (study_dir / "groups.csv").unlink()
    with pytest.raises(SemprobeError, match=r"synsets file .*groups\.csv does not exist"):
        load_study(study_dir / "s.toml")
