"""Transfer (Table 3): one table over two generated ImageFolders and two checkpoints; the
torchvision datasets up to the point where a download would start."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from semprobe.analysis import probe_inputs
from semprobe.checkpoint import load_model
from semprobe.data import open_dataset
from semprobe.errors import SemprobeError
from semprobe.evaluation_data import TORCHVISION, seeded_split
from semprobe.extraction import ExtractionOptions, features
from semprobe.protocols import Strength, TransferSettings, run_transfer
from semprobe.protocols.strengths import fit
from semprobe.protocols.transfer import column_names, paper_metric, transfer_table
from semprobe.rundir import Run
from tests.conftest import save_tiny
from tests.protocol_data import image_folder

EPOCHS = 10


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("transfer")
    return {
        "root": root,
        "pets": image_folder(root / "pets", ["c0", "c1", "c2"], train=8, test=4, seed=1),
        "birds": image_folder(root / "birds", ["b1", "b2", "b3", "b4"], train=6, test=3, seed=2),
        "sem": save_tiny(root / "sem.pt", seed=3),
        "base": save_tiny(root / "base.pt", seed=4, num_simplices=0, vocab=0),
    }


def test_one_table_for_two_checkpoints(folders: dict[str, Path], tmp_path: Path) -> None:
    datasets = (f"imagefolder:{folders['pets']}", f"imagefolder:{folders['birds']}")
    settings = TransferSettings(datasets=datasets, epochs=EPOCHS)
    options = ExtractionOptions(cache_dir=folders["root"] / "cache", progress=False, verbose=False)
    result = run_transfer([folders["sem"], folders["base"]], options, settings, tmp_path / "run")
    tidy = result.tables["transfer"]
    assert list(zip(tidy["model"], tidy["n_classes"], strict=True)) == [
        ("sem", 3), ("sem", 4), ("base", 3), ("base", 4)
    ]  # fmt: skip
    assert list(tidy["representation"]) == ["sem", "sem", "backbone", "backbone"]
    wide = transfer_table(tidy)
    assert list(wide.index) == ["sem", "base"] and list(wide.columns) == ["pets", "birds"]
    # An imagefolder dataset is scored by top-1, even when named like a torchvision one.
    assert (tidy["metric"] == "top1").all()
    # One cell by hand: the base model on birds.
    model = load_model(folders["base"]).model
    target = dataclasses.replace(options, dataset=datasets[1])
    train, test = features(model, target, "train"), features(model, target, "test")
    x_train, x_test = probe_inputs(train, test, "backbone", 1.0)
    probe, _ = fit(x_train, train.labels, x_test, test.labels, Strength(l2=1e-4), EPOCHS, 0, "cpu")
    top1 = np.mean(probe.predict(x_test) == test.labels)
    assert wide.loc["base", "birds"] == pytest.approx(top1)
    per_class = np.mean([np.mean(probe.predict(x_test)[test.labels == c] == c) for c in range(4)])
    cell = tidy[(tidy["model"] == "base") & (tidy["dataset"] == datasets[1])].iloc[0]
    assert cell["mean_per_class"] == pytest.approx(per_class)
    run = Run(tmp_path / "run")
    assert run.meta["kind"] == "transfer" and [m.name for m in run.models] == ["sem", "base"]
    text = (tmp_path / "run" / "transfer.md").read_text()
    assert "| model | pets | birds |" in text


def test_several_strengths_are_chosen_on_validation(folders: dict[str, Path]) -> None:
    settings = TransferSettings(
        datasets=(f"imagefolder:{folders['pets']}",),
        strengths=(Strength(l2=1e-4), Strength(l2=100.0)),
        epochs=EPOCHS,
    )
    from semprobe.protocols.evaluate import transfer_of

    options = ExtractionOptions(cache_dir=folders["root"] / "cache", progress=False, verbose=False)
    loaded = load_model(folders["sem"])
    row = transfer_of("sem", loaded, options, settings)["transfer"].iloc[0]
    scores = dict(item.split(":") for item in row["validation"].split(";"))
    assert set(scores) == {"l2=0.0001", "l2=100"}
    best = max(scores, key=lambda k: (float(scores[k]), k == "l2=0.0001"))
    assert row["strength"] == best


def test_names_and_metrics() -> None:
    assert paper_metric("pets") == "mean_per_class" and paper_metric("food101") == "top1"
    assert column_names(["food101"]) == {"food101": "food101"}
    labels = np.repeat(np.arange(3), 40)
    train, test = seeded_split(labels, "train", 30, None), seeded_split(labels, "test", 30, None)
    assert np.bincount(labels[train]).tolist() == [30] * 3
    assert np.bincount(labels[test]).tolist() == [10] * 3
    assert len(np.intersect1d(train, test)) == 0
    with pytest.raises(SemprobeError, match="given twice"):
        TransferSettings(datasets=("dtd", "dtd"))
    with pytest.raises(SemprobeError, match="at least one dataset"):
        TransferSettings(datasets=())


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_datasets_stop_before_a_download(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(SemprobeError) as exc:
        open_dataset(name, "train", root=missing, download=False)
    message = str(exc.value)
    assert len(message.splitlines()) == 1
    assert name in message and "--no-download" in message and "does not exist" in message
    assert not missing.exists()  # nothing was created
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SemprobeError, match=f"{name} not found in {empty}") as exc:
        open_dataset(name, "test", root=empty, download=False)
    assert len(str(exc.value).splitlines()) == 1
    assert list(empty.iterdir()) == []


def test_unknown_names_and_splits() -> None:
    with pytest.raises(SemprobeError, match=r"unknown dataset 'food'; choose one of .*food101"):
        open_dataset("food", "train")
    with pytest.raises(SemprobeError, match="pets has no val split"):
        open_dataset("pets", "val", download=False)
