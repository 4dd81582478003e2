"""Robustness (Table 2): class subsets, label fractions and ImageNet-C on generated folders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from semprobe.analysis import probe_inputs
from semprobe.checkpoint import load_model
from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions, features
from semprobe.protocols import RobustnessSettings, run_robustness
from semprobe.protocols.label_fraction import fraction_rows, label_file_rows, label_sets
from semprobe.protocols.robustness import (
    corruption_tree,
    match_classes,
    plan_classes,
    restricted_scores,
    robustness_table,
)
from semprobe.protocols.strengths import Strength, fit
from semprobe.rundir import Run
from semprobe.sem import sem_softmax
from tests.conftest import save_tiny
from tests.protocol_data import image_folder, imagenet_c_tree, write_classes

CLASSES = [f"n0000000{i}" for i in range(6)]  # the digits are the class index
EPOCHS = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("robust")
    train = image_folder(root / "train_set", CLASSES, train=10, test=4)
    # ImageNet-R-like: three of the classes plus one the probe never saw.
    write_classes(root / "r", [CLASSES[0], CLASSES[2], CLASSES[4], "n09999999"], 3, seed=7)
    # ImageNet-V2-like: folders named by class index.
    write_classes(root / "v2", [str(i) for i in range(6)], 2, seed=8)
    imagenet_c_tree(root / "c", CLASSES, 2)
    return {
        "root": root,
        "train": train,
        "ckpt": save_tiny(root / "sem.pt", seed=1),
        "base": save_tiny(root / "base.pt", seed=2, num_simplices=0, vocab=0),
    }


def _options(world: dict[str, Path]) -> ExtractionOptions:
    return ExtractionOptions(
        dataset=f"imagefolder:{world['train']}",
        cache_dir=world["root"] / "cache",
        progress=False,
        verbose=False,
    )


def _settings(world: dict[str, Path], **extra: object) -> RobustnessSettings:
    root = world["root"]
    fields: dict[str, object] = {
        "evals": {
            "r": f"classfolder:{root / 'r'}",
            "v2": f"classfolder:{root / 'v2'}",
            "c": f"imagenet-c:{root / 'c'}",
        },
        "label_fractions": (1.0, 0.5),
        "epochs": EPOCHS,
    }
    fields.update(extra)
    return RobustnessSettings(**fields)  # type: ignore[arg-type]


def _sem(fs, tau: float) -> np.ndarray:
    logits = torch.from_numpy(np.array(fs.logits, dtype=np.float32))
    return sem_softmax(logits, fs.num_simplices, fs.vocab, tau).numpy()


def test_a_run_restricts_to_the_classes_present(world: dict[str, Path], tmp_path: Path) -> None:
    options = _options(world)
    result = run_robustness([world["ckpt"]], options, _settings(world), tmp_path / "run")
    tidy = result.tables["robustness"]
    full = tidy[tidy["labels"] == "100%"]
    r = full[full["eval"] == "r"].iloc[0]
    assert (r["classes"], r["images"], r["left_out"]) == (3, 9, 3)
    assert bool(r["restricted"])
    # Recompute the restricted accuracy on ImageNet-R by hand, from the cache.
    model = load_model(world["ckpt"]).model
    train, test = features(model, options, "train"), features(model, options, "test")
    x_train, x_test = probe_inputs(train, test, "sem", 0.5)  # the model's tau
    probe, _ = fit(x_train, train.labels, x_test, test.labels, Strength(l2=1e-4), EPOCHS, 0, "cpu")
    rset = features(
        model, dataclasses.replace(options, dataset=f"classfolder:{world['root'] / 'r'}"), "test"
    )
    raw_train = _sem(train, 0.5)
    mean, std = raw_train.mean(0), raw_train.std(0) + 1e-6
    scores = ((_sem(rset, 0.5) - mean) / std) @ probe.coef_.T + probe.intercept_
    mapped = np.array([CLASSES.index(n) if n in CLASSES else -1 for n in rset.class_names])[
        rset.labels
    ]
    keep = mapped >= 0
    allowed = np.array([0, 2, 4])
    predicted = allowed[scores[keep][:, allowed].argmax(1)]
    assert r["top1"] == pytest.approx(np.mean(predicted == mapped[keep]), abs=1e-9)
    # ImageNet-V2's index folders map onto the classes by index: all six, none left out.
    v2 = full[full["eval"] == "v2"].iloc[0]
    assert (v2["classes"], v2["images"], v2["left_out"], bool(v2["restricted"])) == (
        6,
        12,
        0,
        False,
    )
    # ImageNet-C: every (corruption, severity), and the table's value is their mean.
    c = full[full["eval"] == "c"]
    assert sorted(zip(c["corruption"], c["severity"], strict=True)) == [
        ("fog", 1), ("fog", 2), ("gaussian_noise", 1), ("gaussian_noise", 2)
    ]  # fmt: skip
    wide = robustness_table(tidy)
    assert list(wide.columns) == ["train_set", "r", "v2", "c"]
    assert wide.loc[("sem", "100%"), "c"] == pytest.approx(c["top1"].mean())
    corr = result.tables["robustness_corruptions"]
    fog = corr[(corr["labels"] == "100%") & (corr["corruption"] == "fog")].iloc[0]
    assert fog["mean"] == pytest.approx((fog["severity 1"] + fog["severity 2"]) / 2)
    # The half-label probe saw 5 images of each class.
    half = tidy[tidy["labels"] == "50%"]
    assert set(half["n_labels"]) == {30} and set(full["n_labels"]) == {60}
    # The run directory: tables, markdown and figure, and the parameters.
    run = Run(tmp_path / "run")
    assert run.meta["kind"] == "robustness" and [m.name for m in run.models] == ["sem"]
    on_disk = pd.read_csv(tmp_path / "run" / "robustness.csv")
    assert on_disk["top1"].tolist() == pytest.approx(tidy["top1"].tolist())
    assert "| sem | 100% |" in (tmp_path / "run" / "robustness.md").read_text()
    assert (tmp_path / "run" / "robustness.html").is_file()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["parameters"]["settings"]["label_fractions"] == [1.0, 0.5]


def test_label_file_and_a_baseline(world: dict[str, Path], tmp_path: Path) -> None:
    listed = [f"{name}_0_{i}.png" for name in CLASSES for i in (0, 3)]
    file = tmp_path / "2percent.txt"
    file.write_text("\n".join(listed) + "\n")
    settings = _settings(
        world,
        evals={"r": f"classfolder:{world['root'] / 'r'}"},
        label_fractions=(),
        label_files={"file": str(file)},
        subsets={"r": f"{CLASSES[0]},{CLASSES[2]}"},
    )
    result = run_robustness([world["base"]], _options(world), settings, tmp_path / "run")
    tidy = result.tables["robustness"]
    assert set(tidy["labels"]) == {"file"} and set(tidy["n_labels"]) == {12}
    assert set(tidy["representation"]) == {"backbone"}  # no SEM embedder
    r = tidy[tidy["eval"] == "r"].iloc[0]
    assert (r["classes"], r["images"], r["left_out"]) == (2, 6, 6)


def test_label_fractions_are_balanced_seeded_and_reproducible() -> None:
    labels = np.repeat(np.arange(4), [100, 200, 50, 7])
    rows = fraction_rows(labels, 0.1, seed=3)
    assert np.bincount(labels[rows]).tolist() == [10, 20, 5, 1]  # at least one per class
    assert np.array_equal(rows, fraction_rows(labels, 0.1, seed=3))
    assert not np.array_equal(rows, fraction_rows(labels, 0.1, seed=4))
    assert len(fraction_rows(labels, 1.0)) == len(labels)
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(SemprobeError, match=r"label fraction must be"):
            fraction_rows(labels, bad)
    sets = label_sets(labels, (1.0, 0.01))
    assert [s.name for s in sets] == ["100%", "1%"] and sets[0].rows is None


def test_label_file_errors(tmp_path: Path) -> None:
    file = tmp_path / "list.txt"
    file.write_text("a.JPEG\nmissing.JPEG\n")
    with pytest.raises(SemprobeError, match="1 of its 2 images are not in the training split"):
        label_file_rows(["x/a.JPEG", "x/b.JPEG"], file)
    file.write_text("a.JPEG\n")
    with pytest.raises(SemprobeError, match="names more than one"):
        label_file_rows(["x/a.JPEG", "y/a.JPEG"], file)


def test_class_matching_and_restriction() -> None:
    assert match_classes(["Golden Retriever"], ["golden_retriever"]).tolist() == [0]
    assert match_classes(["3", "0"], ["a", "b", "c", "d"]).tolist() == [3, 0]
    with pytest.raises(SemprobeError, match="no class in common"):
        plan_classes(["zebra"], np.array([0]), ["cat", "dog"], None, "r")
    with pytest.raises(SemprobeError, match="subset class 'emu' is not a class"):
        plan_classes(["cat"], np.array([0]), ["cat", "dog"], ["emu"], "r")
    with pytest.raises(SemprobeError, match="no class in common"):
        plan_classes(["cat"], np.array([0]), ["cat", "dog"], ["dog"], "r")

    class Fitted:
        classes_ = np.array([0, 1, 2])

    # Class 1 wins overall, but the restriction to classes {0, 2} makes class 2 the answer.
    scores = np.array([[0.1, 5.0, 0.3]], dtype=np.float32)
    restricted, position = restricted_scores(scores, Fitted(), np.array([0, 2]), np.array([2]))  # type: ignore[arg-type]
    assert restricted.tolist() == [[pytest.approx(0.1), pytest.approx(0.3)]]
    assert position.tolist() == [1]


def test_imagenet_c_tree_errors(tmp_path: Path) -> None:
    with pytest.raises(SemprobeError, match="does not exist"):
        corruption_tree(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SemprobeError, match="no <corruption>/<severity>/ folders"):
        corruption_tree(tmp_path / "empty")
    (tmp_path / "bad" / "fog" / "high").mkdir(parents=True)
    with pytest.raises(SemprobeError, match="is not a severity folder"):
        corruption_tree(tmp_path / "bad")


def test_empty_intersection_fails_before_any_feature(
    world: dict[str, Path], tmp_path: Path
) -> None:
    write_classes(tmp_path / "other", ["n07777777"], 1, seed=3)
    settings = RobustnessSettings(evals={"x": f"classfolder:{tmp_path / 'other'}"})
    options = dataclasses.replace(_options(world), cache_dir=tmp_path / "fresh-cache")
    with pytest.raises(SemprobeError, match="x: no class in common"):
        run_robustness([world["ckpt"]], options, settings, tmp_path / "run")
    assert not (tmp_path / "fresh-cache").exists()  # nothing was extracted
    assert not (tmp_path / "run").exists()
