"""The evaluation commands end to end, and their bad inputs: one line on stderr, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from semprobe.cli import main
from semprobe.rundir import Run
from tests.conftest import save_tiny
from tests.protocol_data import image_folder, write_classes

DATASET = "synthetic:train=2,test=1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    return {
        "root": root,
        "ckpt": save_tiny(root / "m.pt", seed=1),
        "folder": image_folder(root / "folder", ["n00000000", "n00000001", "n00000002"], 6, 3),
        "cache": root / "cache",
    }


def _common(world: dict[str, Path], out: Path) -> list[str]:
    return ["--out", str(out), "--cache-dir", str(world["cache"]), "--quiet"]


def test_knn_command(world: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "knn"
    argv = ["knn", str(world["ckpt"]), "--dataset", DATASET, "--taus", "0.1", "--k", "5", "20"]
    assert main([*argv, "--temperature", "0.07", *_common(world, out)]) == 0
    printed = capsys.readouterr().out
    assert "Weighted kNN" in printed and f"run directory: {out}" in printed
    table = pd.read_csv(out / "knn.csv")
    assert sorted(set(table["k"])) == [5, 20]
    assert list(dict.fromkeys(table["representation"])) == ["backbone", "logits", "sem"]
    assert set(table["convention"]) == {"custom", "solo-learn"}
    assert Run(out).meta["kind"] == "knn"


# 200 rows over 100 classes: scikit-learn's check of the labels warns that this looks like a
# regression target.
@pytest.mark.filterwarnings("ignore:The number of unique classes")
def test_linear_grid_command(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "grid"
    argv = ["linear-grid", str(world["ckpt"]), "--dataset", DATASET, "--train-taus", "0.1", "1"]
    argv += ["--eval-taus", "0.1", "1", "--l1", "--l2", "1e-4", "1e-2", "--epochs", "3"]
    assert main([*argv, *_common(world, out)]) == 0
    table = pd.read_csv(out / "linear_table.csv")
    sem = table[table["representation"] == "sem"]
    assert len(sem) == 4 and set(sem["strength"]) <= {"l2=0.0001", "l2=0.01"}
    grid = pd.read_csv(out / "linear_grid.csv")
    assert set(grid["fit"]) == {"train-part", "all"}
    assert (out / "linear_grid_m.html").is_file()
    assert "tau_train" in (out / "linear_grid.md").read_text()


def test_robustness_and_transfer_commands(world: dict[str, Path], tmp_path: Path) -> None:
    folder = world["folder"]
    write_classes(tmp_path / "r", ["n00000001", "n00000002"], 2, seed=5)
    out = tmp_path / "rob"
    argv = ["robustness", str(world["ckpt"]), "--train", f"imagefolder:{folder}"]
    argv += ["--eval", f"r=classfolder:{tmp_path / 'r'}", "--label-fraction", "1", "0.5"]
    assert main([*argv, "--epochs", "3", *_common(world, out)]) == 0
    tidy = pd.read_csv(out / "robustness.csv")
    assert sorted(set(tidy["labels"])) == ["100%", "50%"]
    assert set(tidy[tidy["eval"] == "r"]["classes"]) == {2}
    out = tmp_path / "tr"
    argv = ["transfer", str(world["ckpt"]), "--datasets", f"imagefolder:{folder}", DATASET]
    assert main([*argv, "--epochs", "3", *_common(world, out)]) == 0
    assert len(pd.read_csv(out / "transfer.csv")) == 2


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda w, t: ["transfer", w["ckpt"], "--datasets", "food10"], "unknown dataset 'food10'"),
        (
            lambda w, t: ["transfer", w["ckpt"], "--datasets", "cifar10", f"imagefolder:{t}/no"],
            "does not exist",
        ),
        (
            lambda w, t: ["robustness", w["ckpt"], "--train", DATASET, "--eval", "x=mnist"],
            "unknown dataset 'mnist'",
        ),
        (
            lambda w, t: [
                "robustness",
                w["ckpt"],
                "--train",
                f"imagefolder:{w['folder']}",
                "--eval",
                f"x=classfolder:{t / 'other'}",
            ],
            "x: no class in common with the probe's 3 classes",
        ),
        (
            lambda w, t: [
                "robustness",
                w["ckpt"],
                "--train",
                DATASET,
                "--eval",
                f"x={DATASET}",
                "--label-fraction",
                "1.5",
            ],
            r"label fraction must be in (0, 1], got 1.5",
        ),
        (
            lambda w, t: [
                "robustness",
                w["ckpt"],
                "--train",
                DATASET,
                "--eval",
                f"x={DATASET}",
                "--label-fraction",
                "0",
            ],
            r"label fraction must be in (0, 1], got 0.0",
        ),
        (
            lambda w, t: ["robustness", w["ckpt"], "--train", DATASET, "--eval", "x"],
            "--eval must be NAME=VALUE, got 'x'",
        ),
        (
            lambda w, t: ["knn", w["ckpt"], "--dataset", DATASET, "--k", "500"],
            "k = 500 is larger than the 200 training rows",
        ),
        (
            lambda w, t: [
                "linear-grid",
                w["ckpt"],
                "--dataset",
                DATASET,
                "--validation-fraction",
                "1",
            ],
            r"validation fraction must be in (0, 1), got 1.0",
        ),
        (
            lambda w, t: ["knn", w["ckpt"], "--dataset", DATASET, "--temperature", "-1"],
            "kNN temperature must be a finite number > 0",
        ),
    ],
)
def test_bad_inputs_are_one_line(world, tmp_path: Path, capsys, make_args, message: str) -> None:
    write_classes(tmp_path / "other", ["n07777777"], 1, seed=3)
    out = tmp_path / "run"
    argv = [str(a) for a in make_args(world, tmp_path)]
    code = main([*argv, "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("semprobe: error: ")
    assert message in err
    assert not out.exists()


def test_a_missing_torchvision_dataset_from_a_real_process(tmp_path: Path, world) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    argv = [sys.executable, "-m", "semprobe", "transfer", str(world["ckpt"]), "--datasets"]
    argv += ["pets", "--no-download", "--data-root", str(tmp_path / "data")]
    argv += ["--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"), "--quiet"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"semprobe: error: pets not found: {tmp_path / 'data'} does not exist (downloading was "
        "disabled by --no-download)"
    ]
    assert not (tmp_path / "run").exists()
