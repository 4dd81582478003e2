"""The README's main job, the example script, a slice of the real-data study and the benchmarks
in their smoke versions: the entry points a user types, run for real at a small budget."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from semprobe.cli import main
from semprobe.rundir import Run
from tests.conftest import REPO

SMALL = "synthetic:train=10,test=4"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--epochs", "2", "--dataset", SMALL]) == 0
    return out


def test_demo_trains_both_models_and_finds_the_planted_groups(demo: Path) -> None:
    run = Run(demo / "run")
    assert [m.name for m in run.models] == [
        "byol-sem",
        "byol-sem-random-init",
        "byol",
        "byol-random-init",
    ]
    table = pd.read_csv(demo / "run" / "comparison.csv").set_index("model")
    sem = table.loc["byol-sem"]
    # The planted superclasses are recovered well above chance by the SEM model's W_K: far
    # outside the permutation null (1,000 permutations: p is at its floor of 1/1001).
    assert sem["relevance_mean"] > 1.5 * sem["chance"]
    assert sem["p"] < 0.01
    assert sem["z"] > 5
    assert sem["n_features"] == 64 * 13
    assert table.loc["byol", "n_features"] == 128
    summary = json.loads((demo / "run" / "byol-sem" / "relevance" / "summary.json").read_text())
    assert summary["lift_vs_random_init"] == pytest.approx(
        sem["relevance_mean"] - table.loc["byol-sem-random-init", "relevance_mean"]
    )
    sweep = pd.read_csv(demo / "run" / "byol-sem" / "tau_sweep.csv")
    assert sorted(sweep["tau"].dropna()) == [0.01, 0.1, 1.0, 10.0]
    assert (demo / "checkpoints" / "byol-sem" / "final.ckpt").exists()


def test_demo_reuses_its_checkpoints(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = demo / "checkpoints" / "byol" / "final.ckpt"
    before = ckpt.stat().st_mtime_ns
    assert main(["demo", "--out", str(demo), "--epochs", "2", "--dataset", SMALL]) == 0
    assert ckpt.stat().st_mtime_ns == before  # not trained again
    assert "superclass relevance of W_K" in capsys.readouterr().out


def test_example_script_runs_on_the_demo_checkpoint(demo: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "entropy_vs_tau.py"),
            "--checkpoint",
            str(demo / "checkpoints" / "byol-sem" / "final.ckpt"),
            "--dataset",
            SMALL,
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split() == ["tau", "H/lnV", "1-hot", "2-hot", "unif", "top1"]
    rows = [line.split() for line in lines[1:8]]
    normalised = [float(r[1]) for r in rows]
    assert [float(r[0]) for r in rows] == [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
    assert normalised == sorted(normalised)  # entropy grows with tau
    assert Run(tmp_path / "run").models[0].name == "byol-sem"


def test_real_data_study_slice(real_cifar: Path, wordnet_corpus: Path, tmp_path: Path) -> None:
    """A two-minute slice of studies/cifar100_real_cpu.toml: same keys, tiny budget."""
    data = tmp_path / "cifar"
    for split, per_class in (("train", 6), ("test", 2)):
        for class_dir in sorted((real_cifar / split).iterdir()):
            (data / split / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:per_class]:
                shutil.copy(image, data / split / class_dir.name / image.name)
    shutil.copy(real_cifar / "superclasses.csv", data / "superclasses.csv")
    text = (REPO / "studies" / "cifar100_real_cpu.toml").read_text()
    text = text.replace("../../shared/data/cifar100-real", str(data))
    assert text.count("epochs = 10") == 2  # the study's pretraining budget, cut to one epoch here
    text = text.replace("epochs = 10", "epochs = 1").replace(
        "num_simplices = 500", "num_simplices = 20"
    )
    text = text.replace("[probe]\nepochs = 40", "[probe]\nepochs = 10")
    text = text.replace("permutations = 1000", "permutations = 50").replace(
        "k_max = 50", "k_max = 5"
    )
    study_file = tmp_path / "studies" / "slice.toml"
    study_file.parent.mkdir()
    study_file.write_text(text)
    assert main(["study", str(study_file)]) == 0
    run = Run(tmp_path / "runs" / "cifar100-real-cpu")
    assert {m.name for m in run.models} >= {"byol-sem", "byol"}
    assert len(run.class_names) == 100
    assert run.superclass_of is not None and len(set(run.superclass_of.values())) == 20
    study = pd.read_csv(tmp_path / "runs" / "cifar100-real-cpu" / "study.csv")
    assert set(study["analysis"]) == {"relevance", "entropy", "tau_sweep"}
    by_source = pd.read_csv(
        tmp_path / "runs" / "cifar100-real-cpu" / "relevance_by_superclasses.csv"
    )
    assert set(by_source["superclasses"]) == {"coarse", "wordnet"}
    wordnet_groups = by_source.loc[by_source["superclasses"] == "wordnet", "groups"]
    assert (wordnet_groups > 20).all()  # depth 7 splits CIFAR-100 more finely than coarse


@pytest.mark.parametrize("name", ["extraction", "probe", "entropy", "pretrain_step", "dashboard"])
def test_benchmark_smoke(name: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", name, "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / f"{name}-smoke.json").read_text())
    assert result["name"] == name
    assert result["machine"]["cpu_count"] >= 1
    assert isinstance(result["ratio"], int | float) and result["ratio"] > 0
