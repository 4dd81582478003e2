"""The dashboard's protocol views on real protocol runs, driven with Streamlit's AppTest."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from semprobe.extraction import ExtractionOptions
from semprobe.protocols import (
    KNNSettings,
    LinearGridSettings,
    RobustnessSettings,
    Strength,
    TransferSettings,
    run_knn,
    run_linear_grid,
    run_robustness,
    run_transfer,
)
from tests.conftest import save_tiny
from tests.protocol_data import image_folder, write_classes

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")
CLASSES = [f"n0000000{i}" for i in range(4)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("protocol-runs")
    checkpoints = [
        save_tiny(root / "sem.pt", seed=1),
        save_tiny(root / "base.pt", seed=2, num_simplices=0, vocab=0),
    ]
    options = ExtractionOptions(
        dataset="synthetic:train=2,test=1", cache_dir=root / "cache", progress=False, verbose=False
    )
    out = {}
    out["knn"] = run_knn(checkpoints, options, KNNSettings(taus=(0.1, 1.0)), root / "knn").out
    grid = LinearGridSettings(
        train_taus=(0.1, 1.0), eval_taus=(0.1, 1.0), strengths=(Strength(l2=1e-4),), epochs=3
    )
    out["linear"] = run_linear_grid(checkpoints, options, grid, root / "linear").out
    folder = image_folder(root / "folder", CLASSES, train=6, test=2)
    write_classes(root / "r", CLASSES[:2], 2, seed=4)
    folder_options = ExtractionOptions(
        dataset=f"imagefolder:{folder}", cache_dir=root / "cache", progress=False, verbose=False
    )
    rob = RobustnessSettings(evals={"r": f"classfolder:{root / 'r'}"}, epochs=3)
    out["robustness"] = run_robustness(checkpoints, folder_options, rob, root / "rob").out
    tr = TransferSettings(datasets=(f"imagefolder:{folder}", "synthetic:train=2,test=1"), epochs=3)
    out["transfer"] = run_transfer(checkpoints, options, tr, root / "transfer").out
    return out


def start(monkeypatch: pytest.MonkeyPatch, paths: list[Path], view: str) -> AppTest:
    monkeypatch.setenv("SEMPROBE_RUNS", ":".join(map(str, paths)))
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.query_params["view"] = view
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_knn_view(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    at = start(monkeypatch, [runs["knn"], runs["linear"]], "kNN")
    assert [s.value for s in at.subheader] == ["knn"]  # only the run that has kNN results
    shown = at.dataframe[0].value
    tidy = pd.read_csv(runs["knn"] / "knn.csv")
    row = tidy[(tidy["model"] == "sem") & (tidy["representation"] == "sem") & (tidy["tau"] == 1.0)]
    lightly = row[row["convention"] == "lightly"]["top1"].iloc[0]
    cell = shown[(shown["model"] == "sem") & (shown["features"] == "sem tau=1")]
    assert cell["lightly (k=200, T=0.1)"].iloc[0] == pytest.approx(lightly)
    # The baseline has the backbone row only.
    assert list(shown[shown["model"] == "base"]["features"]) == ["backbone"]


def test_linear_view(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    at = start(monkeypatch, [runs["linear"]], "Linear protocol")
    table = pd.read_csv(runs["linear"] / "linear_table.csv")
    heat = at.dataframe[0].value
    cell = table[
        (table["model"] == "sem") & (table["tau_train"] == 0.1) & (table["tau_eval"] == 1.0)
    ]
    assert heat.loc["0.1", "1"] == pytest.approx(cell["top1"].iloc[0])
    base = at.dataframe[1].value
    assert list(base["representation"]) == ["backbone", "logits"]
    at.selectbox(key="linear_model_linear").select("base")
    at.run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert list(shown["representation"]) == ["backbone"]  # no heat map for a baseline


def test_robustness_and_transfer_views(
    runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    at = start(monkeypatch, [runs["robustness"]], "Robustness")
    shown = at.dataframe[0].value
    tidy = pd.read_csv(runs["robustness"] / "robustness.csv")
    r = tidy[(tidy["model"] == "sem") & (tidy["eval"] == "r")]["top1"].iloc[0]
    assert shown[shown["model"] == "sem"]["r"].iloc[0] == pytest.approx(r)
    at = start(monkeypatch, [runs["transfer"]], "Transfer")
    shown = at.dataframe[0].value
    assert list(shown.columns) == ["model", "folder", "synthetic"]
    tidy = pd.read_csv(runs["transfer"] / "transfer.csv")
    expected = tidy[(tidy["model"] == "base") & tidy["dataset"].str.startswith("synthetic")]
    assert shown[shown["model"] == "base"]["synthetic"].iloc[0] == pytest.approx(
        expected["value"].iloc[0]
    )
    at.radio(key="transfer_metric").set_value("top1")
    at.run()
    assert not at.exception
    assert not math.isnan(at.dataframe[0].value["folder"].iloc[0])


def test_a_view_without_its_runs_says_so(
    runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    at = start(monkeypatch, [runs["knn"]], "Transfer")
    assert any("semprobe transfer" in i.value for i in at.info)
    # The protocol runs list their models in the Runs view, without errors.
    at = start(monkeypatch, [runs["knn"], runs["transfer"]], "Runs")
    models = at.dataframe[0].value["model"].tolist()
    assert models == ["sem", "base", "sem", "base"]
    assert np.all(at.dataframe[0].value["kind"].isin(["SEM", "baseline"]))
