"""Entropy and tau studies, the Study API and study files, on real tiny models."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from semprobe.checkpoint import load_model
from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions, features
from semprobe.pretrain.study_trainer import StudyTrainer
from semprobe.rundir import Run
from semprobe.studies import (
    ProbeSettings,
    Study,
    accuracy_table,
    load_study,
    tau_sweep,
)
from semprobe.validation import check_taus
from tests.conftest import save_tiny
from tests.pretrain_runs import TINY_PRETRAIN

DATASET = "synthetic:train=3,test=2"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    return {
        "sem": save_tiny(root / "sem.pt", seed=3),
        "base": save_tiny(root / "base.pt", seed=4, num_simplices=0, vocab=0),
    }


def test_tau_sweep_reuses_the_cache(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    model = load_model(checkpoints["sem"]).model
    calls = [0]
    model.backbone.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    options = ExtractionOptions(dataset=DATASET, cache_dir=tmp_path, progress=False)
    train, test = features(model, options, "train"), features(model, options, "test")
    after_extraction = calls[0]
    assert after_extraction > 0
    sweep = tau_sweep(train, test, [0.01, 0.1, 1.0, 10.0], ProbeSettings(epochs=5), "sem")
    assert calls[0] == after_extraction  # the backbone never ran again
    assert list(sweep["representation"]) == ["backbone", "logits", "sem", "sem", "sem", "sem"]
    assert list(sweep["tau"].dropna()) == [0.01, 0.1, 1.0, 10.0]
    assert sweep["top1"].between(0, 1).all()
    assert (sweep["top5"] >= sweep["top1"]).all()
    assert list(sweep["n_features"]) == [128, 40, 40, 40, 40, 40]
    base = tau_sweep(train, test, [1.0], ProbeSettings(epochs=5), "base").iloc[:1]
    table = accuracy_table(pd.concat([sweep, base], ignore_index=True))
    assert list(table.index) == ["sem", "base"]
    assert list(table.columns) == [
        "backbone",
        "logits",
        "sem tau=0.01",
        "sem tau=0.1",
        "sem tau=1",
        "sem tau=10",
    ]
    assert table.loc["sem", "sem tau=0.1"] == sweep["top1"].iloc[3]
    assert table.loc["base", "backbone"] == base["top1"].iloc[0]
    assert table.loc["base"].drop("backbone").isna().all()
    # Asking again for the same features hits the cache: still no backbone call.
    features(model, options, "train")
    assert calls[0] == after_extraction


def test_study_writes_a_tidy_table_and_a_run(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    study = Study(
        checkpoints,
        dataset=DATASET,
        taus=[0.1, 1.0],
        analyses=["entropy", "tau_sweep"],
        options=ExtractionOptions(cache_dir=tmp_path / "cache", progress=False),
        probe=ProbeSettings(epochs=5),
    )
    result = study.run(tmp_path / "run")
    table = result.table
    assert list(table.columns) == ["model", "analysis", "representation", "tau", "metric", "value"]
    entropy_rows = table[(table["analysis"] == "entropy") & (table["metric"] == "entropy_mean")]
    assert set(entropy_rows["model"]) == {"sem"}  # the baseline has no simplices
    assert sorted(entropy_rows["tau"]) == [0.1, 1.0]
    assert entropy_rows["value"].between(0, math.log(5)).all()
    sweep_rows = table[table["analysis"] == "tau_sweep"]
    assert set(sweep_rows["model"]) == {"sem", "base"}
    assert {"accuracy_vs_tau", "entropy_histogram_sem", "entropy_ranked_sem"} <= set(result.figures)

    run = Run(tmp_path / "run")
    assert [m.name for m in run.models] == ["sem", "base"]
    assert "sem: no SEM embedder" not in " ".join(run.meta["parameters"]["notes"])
    assert run.meta["parameters"]["notes"] == ["base: no SEM embedder, entropy analysis skipped"]
    saved = pd.read_csv(tmp_path / "run" / "study.csv")
    assert len(saved) == len(table)
    assert (tmp_path / "run" / "sem" / "entropy" / "summary.parquet").exists()
    assert (tmp_path / "run" / "accuracy_vs_tau.html").exists()
    # The entropy summary at tau=1 equals a dense float64 computation on the run's logits.
    logits = np.asarray(run.model("sem").logits(), dtype=np.float64).reshape(-1, 8, 5)
    z = logits - logits.max(-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    h = -(p * np.log(np.where(p > 0, p, 1))).sum(-1)
    got = entropy_rows.set_index("tau").loc[1.0, "value"]
    assert got == pytest.approx(h.mean(), rel=1e-4)


def test_study_without_out_keeps_nothing(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    study = Study(
        {"sem": checkpoints["sem"]},
        dataset=DATASET,
        taus=[1.0],
        analyses=["entropy"],
        options=ExtractionOptions(cache_dir=tmp_path / "cache", progress=False),
    )
    result = study.run()
    assert result.out is None
    assert set(result.entropy) == {"sem"}


@pytest.mark.parametrize(
    ("taus", "message"),
    [
        ([], "at least one tau"),
        ([0.0], "positive"),
        (["x"], "positive"),
        ([-1], "positive"),
        ([0.1, 1, 0.1], "tau 0.1 is given twice"),
    ],
)
def test_bad_taus(taus: list[object], message: str) -> None:
    with pytest.raises(SemprobeError, match=message):
        check_taus(taus)


def test_study_file_round_trip_and_errors(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "sem.pt").write_bytes(checkpoints["sem"].read_bytes())
    good = tmp_path / "study.toml"
    good.write_text(
        f'dataset = "{DATASET}"\ntaus = [0.5, 2]\nanalyses = ["entropy"]\nout = "out/s"\n'
        '[checkpoints]\nsem = "models/sem.pt"\n'
        '[extraction]\ncache_dir = "cache"\nprogress = false\n'
    )
    study, out = load_study(good)
    assert out == tmp_path / "out" / "s"
    assert study.checkpoints["sem"] == tmp_path / "models" / "sem.pt"
    assert study.options.cache_dir == tmp_path / "cache"
    assert list(study.taus) == [0.5, 2.0]
    result = study.run(out)
    assert sorted(result.entropy["sem"].summary["tau"]) == [0.5, 2.0]

    yaml_file = tmp_path / "study.yaml"
    yaml_file.write_text(f"dataset: {DATASET}\ncheckpoints:\n  sem: models/sem.pt\ncolour: red\n")
    with pytest.raises(SemprobeError, match="unknown key 'colour'"):
        load_study(yaml_file)
    bad_probe = tmp_path / "bad.toml"
    bad_probe.write_text('[checkpoints]\nsem = "x.pt"\n[probe]\nlearning_rate = 1\n')
    with pytest.raises(SemprobeError, match=r"unknown key 'learning_rate' in .*\[probe\]"):
        load_study(bad_probe)
    listed = tmp_path / "listed.toml"
    listed.write_text(
        '[checkpoints]\nsem = "x.pt"\n[relevance]\nsuperclasses = ["coarse", "wordnet:6"]\n'
    )
    assert load_study(listed)[0].relevance.superclass_sources == ["coarse", "wordnet:6"]
    listed.write_text(
        '[checkpoints]\nsem = "x.pt"\n[relevance]\nsuperclasses = ["coarse", "wordnet:x"]\n'
    )
    with pytest.raises(SemprobeError, match="WordNet depth must be an integer"):
        load_study(listed)
    empty = tmp_path / "empty.toml"
    empty.write_text('taus = []\n[checkpoints]\nsem = "x.pt"\n')
    with pytest.raises(SemprobeError, match="at least one tau"):
        load_study(empty)
    twins = tmp_path / "twins.toml"
    twins.write_text('twin_taus = [1]\n[checkpoints]\nsem = "x.pt"\n')
    assert load_study(twins)[0].twin_taus == [1.0]
    twins.write_text('twin_taus = [1, -1]\n[checkpoints]\nsem = "x.pt"\n')
    with pytest.raises(SemprobeError, match="positive"):
        load_study(twins)
    broken = tmp_path / "broken.toml"
    broken.write_text("dataset = \n")
    with pytest.raises(SemprobeError, match="cannot parse study file"):
        load_study(broken)


def _command_on_baseline(command: str, checkpoint: Path, tmp_path: Path, *extra: str) -> int:
    """``semprobe COMMAND`` on the baseline checkpoint, writing ``tmp_path/run``."""
    from semprobe.cli import main

    out, cache = str(tmp_path / "run"), str(tmp_path / "c")
    return main(
        [
            command,
            str(checkpoint),
            "--dataset",
            DATASET,
            "--out",
            out,
            "--cache-dir",
            cache,
            "--quiet",
            *extra,
        ]
    )


def test_entropy_command_on_a_baseline_explains(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _command_on_baseline("entropy", checkpoints["base"], tmp_path) == 2
    assert "has a SEM embedder, so there are no simplices" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_tau_sweep_command_falls_back_to_backbone_for_a_baseline(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _command_on_baseline("tau-sweep", checkpoints["base"], tmp_path, "--epochs", "5") == 0
    sweep = pd.read_csv(tmp_path / "run" / "base" / "tau_sweep.csv")
    assert list(sweep["representation"]) == ["backbone"]


def test_a_study_refuses_a_checkpoint_trained_with_other_options(tmp_path: Path) -> None:
    ckpt = tmp_path / "models" / "m" / "final.ckpt"
    options = ExtractionOptions(cache_dir=tmp_path / "cache", progress=False)

    def study(**changes: object) -> Study:
        config = {**TINY_PRETRAIN, **changes}
        return Study(
            {"m": ckpt},
            DATASET,
            [1.0],
            ["entropy"],
            options,
            pretrain={"m": config},
            trainer=StudyTrainer(),
        )

    first = study().run(tmp_path / "run1")
    assert ckpt.is_file() and "m" in first.entropy
    trained = ckpt.read_bytes()
    # Options that only say how to run, or set the online monitors, may change freely.
    assert "m" in study(workers=1, classifier_lr=0.5).run(tmp_path / "run2").entropy
    with pytest.raises(SemprobeError, match=r"max_steps = 2 \(the study asks 3\)"):
        study(max_steps=3).run(tmp_path / "run3")
    with pytest.raises(SemprobeError, match=r"optimizer = 'lars' \(the study asks 'adamw'\)"):
        study(optimizer="adamw").run(tmp_path / "run3")
    assert ckpt.read_bytes() == trained
    assert not (tmp_path / "run3").exists()


def test_a_bad_pretrain_section_fails_before_any_model_trains(tmp_path: Path) -> None:
    paths = {name: tmp_path / name / "final.ckpt" for name in ("good", "bad")}
    pretrain = {"good": TINY_PRETRAIN, "bad": {**TINY_PRETRAIN, "lr": -1.0}}
    options = ExtractionOptions(cache_dir=tmp_path / "cache", progress=False)
    study = Study(
        paths, DATASET, [1.0], ["entropy"], options, pretrain=pretrain, trainer=StudyTrainer()
    )
    with pytest.raises(SemprobeError, match=r"lr must be a positive number, got -1\.0"):
        study.run(tmp_path / "run")
    assert not any(p.exists() for p in paths.values())


def test_superclasses_are_resolved_before_any_model_trains(tmp_path: Path) -> None:
    from semprobe.analysis import RelevanceSettings

    ckpt = tmp_path / "m" / "final.ckpt"
    study = Study(
        {"m": ckpt},
        DATASET,
        [1.0],
        ["relevance"],
        ExtractionOptions(cache_dir=tmp_path / "cache", progress=False),
        relevance=RelevanceSettings(superclasses=f"coarse,file:{tmp_path / 'missing.csv'}"),
        pretrain={"m": TINY_PRETRAIN},
        trainer=StudyTrainer(),
    )
    with pytest.raises(SemprobeError, match=r"missing\.csv"):
        study.run(tmp_path / "run")
    assert not ckpt.exists()


@pytest.mark.parametrize("name", ["cifar100_real_cpu.toml", "cifar100_real_gpu.toml"])
def test_shipped_study_files_are_valid(name: str) -> None:
    """Their options must not fail only hours (or a GPU) later."""
    from semprobe.pretrain.config import PretrainConfig

    study, _ = load_study(
        Path(__file__).resolve().parents[1] / "studies" / name, trainer=StudyTrainer()
    )
    assert study.relevance.superclass_sources == ["coarse", "wordnet"]
    assert study.relevance.reference == "random-init"
    configs = {
        model: PretrainConfig.from_dict({"dataset": study.dataset, **section}).resolved()
        for model, section in study.pretrain.items()
    }
    assert set(configs) == set(study.checkpoints) == {"byol-sem", "byol"}
    sem, base = configs["byol-sem"], configs["byol"]
    assert sem.sem and not base.sem
    # The same budget and optimisation for both models: only SEM differs.
    same = ("backbone", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "warmup_epochs")
    assert [getattr(sem, k) for k in same] == [getattr(base, k) for k in same]
    if "gpu" in name:
        assert (sem.backbone, sem.num_simplices, sem.vocab) == ("resnet18", 5000, 13)
