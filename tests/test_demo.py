"""The README's main job, the example script, a slice of the real-data study and the benchmarks
in their smoke versions: the entry points a user types, run for real at a small budget.

The demo's claims are checked against the random-init twins over three seeds: what a random
network already does (the planted superclasses are far outside the permutation null for it too)
proves nothing about training."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from semprobe.cli import main
from semprobe.rundir import Run
from tests.conftest import REPO

SMALL = "synthetic:train=10,test=4"
SEEDS = (0, 1, 2)


@pytest.mark.slow
@pytest.mark.demo_seeds
def test_training_beats_the_random_init_twins_over_three_seeds(tmp_path: Path) -> None:
    """The demo's configuration and data, seeds 0, 1, 2: relevance (200 permutations) and the
    linear evaluation at the pretraining tau, for both models and their random-init twins.

    In every seed each trained model's linear probe (the tau sweep's dense probe: the SEM output
    at tau = 1, the baseline's backbone) beats its twin's, and the SEM model's W_K is more
    superclass-relevant than its twin's. Measured values: docs/results.md section 2.
    """
    import dataclasses

    from semprobe.cli.demo import DATASET, demo_study

    for seed in SEEDS:
        study = demo_study(tmp_path / f"seed{seed}", seed=seed, dataset=DATASET)
        study = dataclasses.replace(
            study,
            taus=[1.0],
            analyses=["relevance", "tau_sweep"],
            relevance=dataclasses.replace(study.relevance, permutations=200),
        )
        run = tmp_path / f"seed{seed}" / "run"
        study.run(run)
        for model, representation in (("byol-sem", "sem"), ("byol", "backbone")):
            trained, twin = (
                _probe_top1(run / name / "tau_sweep.csv", representation)
                for name in (model, f"{model}-random-init")
            )
            assert trained > twin, (seed, model, trained, twin)
        summary = json.loads((run / "byol-sem" / "relevance" / "summary.json").read_text())
        assert summary["lift_vs_random_init"] > 0, (seed, summary["lift_vs_random_init"])


def _probe_top1(sweep_csv: Path, representation: str) -> float:
    sweep = pd.read_csv(sweep_csv)
    (top1,) = sweep.loc[sweep["representation"] == representation, "top1"]
    return float(top1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--epochs", "2", "--dataset", SMALL]) == 0
    return out


def test_demo_writes_both_models_and_their_random_twins(demo: Path) -> None:
    run = Run(demo / "run")
    assert [m.name for m in run.models] == [
        "byol-sem",
        "byol-sem-random-init",
        "byol",
        "byol-random-init",
    ]
    table = pd.read_csv(demo / "run" / "comparison.csv").set_index("model")
    sem = table.loc["byol-sem"]
    assert sem["n_features"] == 64 * 13
    assert table.loc["byol", "n_features"] == 128
    summary = json.loads((demo / "run" / "byol-sem" / "relevance" / "summary.json").read_text())
    assert summary["lift_vs_random_init"] == pytest.approx(
        sem["relevance_mean"] - table.loc["byol-sem-random-init", "relevance_mean"]
    )
    sweep = pd.read_csv(demo / "run" / "byol-sem" / "tau_sweep.csv")
    assert sorted(sweep["tau"].dropna()) == [0.01, 0.1, 1.0, 10.0]
    # The twins get the same linear evaluation, so training is judged on the dense probe too.
    twin_sweep = pd.read_csv(demo / "run" / "byol-sem-random-init" / "tau_sweep.csv")
    assert set(twin_sweep["model"]) == {"byol-sem-random-init"}
    # ... at the pretraining tau alone (the demo's time budget), on the same representations.
    assert list(twin_sweep["representation"]) == ["backbone", "logits", "sem"]
    assert list(twin_sweep["tau"].dropna()) == [1.0]
    at_one = sweep[(sweep["representation"] == "sem") & (sweep["tau"] == 1.0)]
    assert int(at_one["n_features"].iloc[0]) == int(twin_sweep["n_features"].iloc[2]) == 64 * 13
    assert list(twin_sweep["top1"]) != list(sweep["top1"].iloc[[0, 1]]) + list(at_one["top1"])
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


def _extraction(r: dict[str, Any]) -> None:
    assert r["imagenet"]["identical_to_bare"] is True  # our features are the bare loop's
    small, large = r["rss_small"], r["rss_large"]
    assert small["logits_shape"] == [small["images"], 5000 * 13]
    assert large["logits_shape"] == [large["images"], 5000 * 13]
    assert large["images"] == 3 * small["images"]


def _probe(r: dict[str, Any]) -> None:
    # Both fit the same objective: ours reaches its minimum, at least as low as saga's.
    assert r["ours_converged"] is True
    assert r["ours_objective"] <= r["saga_objective"] * (1 + 1e-3)
    assert 0.0 < r["ours_sparsity"] < 1.0
    assert r["ours_test_top5"] >= r["ours_test_acc"] > 1.0 / r["shape"]["n_classes"]


def _entropy(r: dict[str, Any]) -> None:
    # Every tau's mean, min and max equal float64 numpy on the same file; every pair counted.
    inv = r["invariants"]
    assert max(inv["max_abs_error_vs_float64"].values()) < 1e-5
    assert inv["histogram_counts_every_pair"] is True
    means = [row["mean"] for row in r["summary"]]
    assert means == sorted(means)  # entropy grows with tau


def _pretrain_step(r: dict[str, Any]) -> None:
    for method, m in r["by_method"].items():
        assert m["embedder_moved"] is True, method  # the timed steps trained something
        assert m["flop_ratio"] > 1.0 and m["sem_params"] > m["baseline_params"], method
        assert all(math.isfinite(v) for v in m["final_losses"].values()), method


def _dashboard(r: dict[str, Any]) -> None:
    # The bench refuses to time a page that failed; what it timed was the run it built.
    assert r["run"]["n_test"] == 200 and r["run"]["smoke"] is True
    assert r["simplex_switch_max_s"] >= r["simplex_switch_s"] > 0


def _knn(r: dict[str, Any]) -> None:
    # Both searches are exact: the same accuracy (up to exactly tied neighbours).
    assert abs(r["ours_top1"] - r["theirs_top1"]) <= 1.0 / r["shape"]["n_test"]


def _linear_grid(r: dict[str, Any]) -> None:
    assert r["cells"] == 36 and r["accuracies_in_range"] is True
    assert r["objective_passes"] >= r["fits"] > 0


def _probe_scale(r: dict[str, Any]) -> None:
    assert r["measured"]["peak_rss_mb"] < r["rss_bound_mb"]


def _simplex_information(r: dict[str, Any]) -> None:
    # The vectorised table is scikit-learn's mutual_info_score, simplex by simplex.
    assert r["max_abs_difference_nats"] < 1e-9 and r["ours_s"] > 0


INVARIANTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "extraction": _extraction,
    "probe": _probe,
    "entropy": _entropy,
    "pretrain_step": _pretrain_step,
    "dashboard": _dashboard,
    "knn": _knn,
    "linear_grid": _linear_grid,
    "probe_scale": _probe_scale,
    "simplex_information": _simplex_information,
}


def test_every_benchmark_has_an_invariant() -> None:
    from bench.__main__ import BENCHES

    assert set(BENCHES) == set(INVARIANTS)


@pytest.mark.parametrize("name", list(INVARIANTS))
def test_benchmark_smoke(name: str, tmp_path: Path) -> None:
    """Each benchmark's smoke form runs and keeps the invariant that makes its ratio mean
    something (the same outputs as the baseline, real training steps, ...), not just a ratio."""
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
    INVARIANTS[name](result)
