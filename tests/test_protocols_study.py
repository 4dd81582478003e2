"""The protocols in a study: one study file gives the paper's Tables 1-3 for a list of models."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from semprobe.cli import main
from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions
from semprobe.protocols import KNNSettings, LinearGridSettings, Strength
from semprobe.rundir import Run
from semprobe.studies import Study, load_study
from semprobe.studies.protocols import ProtocolSettings
from tests.conftest import save_tiny
from tests.protocol_data import image_folder, imagenet_c_tree, write_classes

CLASSES = [f"n0000000{i}" for i in range(4)]

STUDY = """
dataset = "imagefolder:data/train_set"
analyses = ["tau_sweep", "knn", "linear_grid", "robustness", "transfer"]
taus = [0.5]
out = "runs/tables"

[checkpoints]
sem = "sem.pt"
base = "base.pt"

[probe]
epochs = 3

[extraction]
cache_dir = "cache"
progress = false

[knn]
ks = [3]

[linear_grid]
train_taus = [0.1, 1.0]
eval_taus = [0.1, 1.0]
l2 = [1e-4]
epochs = 3

[robustness]
label_fractions = [1.0, 0.5]
epochs = 3
evals = { r = "classfolder:data/r", c = "imagenet-c:data/c" }
subsets = { r = "n00000001,n00000002" }

[transfer]
datasets = ["imagefolder:data/other", "synthetic:train=2,test=1"]
epochs = 3
"""


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("study")
    data = root / "data"
    image_folder(data / "train_set", CLASSES, train=6, test=2)
    image_folder(data / "other", ["a1", "a2"], train=5, test=2, seed=3)
    write_classes(data / "r", CLASSES[:3], 2, seed=4)
    imagenet_c_tree(data / "c", CLASSES, 1)
    save_tiny(root / "sem.pt", seed=1)
    save_tiny(root / "base.pt", seed=2, num_simplices=0, vocab=0)
    (root / "tables.toml").write_text(STUDY)
    return root


def test_one_study_file_writes_every_protocol(study_dir: Path, capsys) -> None:
    assert main(["study", str(study_dir / "tables.toml")]) == 0
    printed = capsys.readouterr().out
    for title in ("Weighted kNN", "Linear protocol", "Table 2 layout", "Table 3 layout"):
        assert title in printed
    out = study_dir / "runs" / "tables"
    run = Run(out)
    assert run.meta["kind"] == "study"
    assert set(run.meta["parameters"]["protocols"]) == {
        "knn",
        "linear_grid",
        "robustness",
        "transfer",
    }
    for name in (
        "knn",
        "linear_table",
        "linear_grid",
        "robustness",
        "robustness_corruptions",
        "transfer",
    ):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.parquet").is_file()
    robust = pd.read_csv(out / "robustness.csv")
    r = robust[robust["eval"] == "r"]
    assert set(r["classes"]) == {2} and set(r["left_out"]) == {2}  # the subset, n00000000 left out
    transfer = pd.read_csv(out / "transfer.csv")
    assert list(transfer["model"]) == ["sem", "sem", "base", "base"]
    # The study's tidy table holds the protocols' numbers too.
    tidy = pd.read_csv(out / "study.csv")
    assert {"tau_sweep", "knn", "linear_grid", "robustness", "transfer"} <= set(tidy["analysis"])
    knn = pd.read_csv(out / "knn.csv")
    row = knn[(knn["model"] == "base") & (knn["k"] == 3)].iloc[0]
    match = tidy[(tidy["analysis"] == "knn") & (tidy["model"] == "base")]
    assert match["value"].tolist() == [row["top1"]] * len(match)
    # The knn section took the study's taus.
    assert set(knn["tau"].dropna()) == {0.5}
    # The diagonal of the grid at tau 1 sits beside the tau sweep at the study's tau 0.5: both ran.
    grid = pd.read_csv(out / "linear_table.csv")
    assert len(grid[(grid["model"] == "sem") & (grid["representation"] == "sem")]) == 4


def test_bad_sections_fail_when_the_file_is_read(study_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(STUDY.replace("ks = [3]", "k = [3]").replace('out = "runs/tables"', ""))
    with pytest.raises(SemprobeError, match=r"unknown key 'k' in .* \[knn\]"):
        load_study(bad)
    bad.write_text(STUDY.replace("label_fractions = [1.0, 0.5]", "label_fractions = [2]"))
    with pytest.raises(SemprobeError, match=r"label fraction must be in \(0, 1\], got 2"):
        load_study(bad)
    no_evals = "\n".join(
        line for line in STUDY.splitlines() if not line.startswith(("evals", "subsets"))
    )
    bad.write_text(no_evals)
    with pytest.raises(SemprobeError, match="robustness analysis needs a \\[robustness\\] section"):
        load_study(bad)


def test_a_typo_in_a_transfer_dataset_fails_before_any_feature(
    study_dir: Path, tmp_path: Path
) -> None:
    text = STUDY.replace('"synthetic:train=2,test=1"', '"food10"').replace(
        'cache_dir = "cache"', f'cache_dir = "{tmp_path / "c"}"'
    )
    (study_dir / "typo.toml").write_text(text)
    study, _ = load_study(study_dir / "typo.toml")
    with pytest.raises(SemprobeError, match="unknown dataset 'food10'"):
        study.run(tmp_path / "run")
    assert not (tmp_path / "c").exists() and not (tmp_path / "run").exists()


def test_the_python_api(study_dir: Path, tmp_path: Path) -> None:
    study = Study(
        {"sem": study_dir / "sem.pt"},
        dataset="synthetic:train=2,test=1",
        analyses=["knn", "linear_grid"],
        options=ExtractionOptions(cache_dir=tmp_path / "cache", progress=False, verbose=False),
        protocols=ProtocolSettings(
            knn=KNNSettings(ks=(5,), temperatures=(0.1,), representations=("backbone",)),
            linear_grid=LinearGridSettings(
                train_taus=(1.0,), eval_taus=(1.0,), strengths=(Strength(l2=1e-4),), epochs=2
            ),
        ),
    )
    result = study.run()
    assert list(result.protocols) == ["knn", "linear_grid"]
    assert list(result.protocols["knn"]["knn"]["k"]) == [5]
    assert set(result.table["analysis"]) == {"knn", "linear_grid"}
    with pytest.raises(SemprobeError, match="transfer analysis needs a \\[transfer\\] section"):
        Study({"sem": study_dir / "sem.pt"}, analyses=["transfer"])
    with pytest.raises(SemprobeError, match="unknown analyses \\['knnn'\\]"):
        Study({"sem": study_dir / "sem.pt"}, analyses=["knnn"])
