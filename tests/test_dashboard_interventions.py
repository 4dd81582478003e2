"""The simplex browser's interventions, in AppTest: the probabilities shown are the probe applied
to the edited input, computed here directly from the run's logits and probe.npz."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")
SIMPLEX = 3


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_dashboard import build_run

    source = build_run(tmp_path_factory.getbasetemp())
    return Path(shutil.copytree(source, tmp_path_factory.mktemp("interventions") / "run"))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def probe_answer(run_dir: Path, rows: np.ndarray, vertex: int | None) -> np.ndarray:
    """Mean class probabilities of the probe on ``rows``, with SIMPLEX set to one-hot ``vertex``
    (None: unedited), by applying the probe to the whole edited input."""
    spec = json.loads((run_dir / "sem" / "model.json").read_text())["spec"]
    n_simplices, v, tau = spec["num_simplices"], spec["vocab"], spec["tau"]
    z = np.load(run_dir / "sem" / "logits.npy")[rows].astype(np.float64)
    sem = softmax(z.reshape(len(rows), n_simplices, v) / tau)
    if vertex is not None:
        sem[:, SIMPLEX] = np.eye(v)[vertex]
    with np.load(run_dir / "sem" / "relevance" / "probe.npz") as npz:
        x = (sem.reshape(len(rows), -1) - npz["input_mean"]) / npz["input_std"]
        scores = x @ npz["coef"].astype(np.float64).T + npz["intercept"]
    return softmax(scores).mean(axis=0)


def open_view(run_dir: Path, monkeypatch: pytest.MonkeyPatch, errors: bool = False) -> AppTest:
    monkeypatch.setenv("SEMPROBE_RUNS", str(run_dir))
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.query_params["view"] = "Simplices"
    at.query_params["simplex"] = str(SIMPLEX)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert errors or not at.error, [e.value for e in at.error]
    return at


def shown_table(at: AppTest) -> pd.DataFrame:
    return next(
        d.value
        for d in at.dataframe
        if list(d.value.columns) == ["class", "before", "after", "change"]
    )


def check_against_probe(at: AppTest, run_dir: Path, rows: np.ndarray, vertex: int) -> None:
    names = json.loads((run_dir / "classes.json").read_text())["class_names"]
    before, after = probe_answer(run_dir, rows, None), probe_answer(run_dir, rows, vertex)
    table = shown_table(at)
    assert len(table) == 10
    index = [names.index(c) for c in table["class"]]
    np.testing.assert_allclose(table["before"], before[index], atol=1e-6)
    np.testing.assert_allclose(table["after"], after[index], atol=1e-6)
    change = np.abs(after - before)
    assert np.all(np.diff(np.abs(table["change"])) <= 1e-12)  # most changed first
    assert np.abs(table["change"]).min() >= np.sort(change)[-10] - 1e-9

    heat = next(
        json.loads(c.proto.spec)
        for c in at.get("plotly_chart")
        if json.loads(c.proto.spec)["data"][0]["type"] == "heatmap"
    )["data"][0]
    effects = np.array(heat["z"], dtype=float)
    spec = json.loads((run_dir / "sem" / "model.json").read_text())["spec"]
    expected = np.stack(
        [probe_answer(run_dir, rows, u) - before for u in range(spec["vocab"])]
    )  # the mean of the per-image changes is the change of the mean
    np.testing.assert_allclose(effects, expected, atol=1e-6)


def test_intervening_on_one_image(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_view(run_dir, monkeypatch)
    at.number_input(key="intervene_image").set_value(7).run()
    at.selectbox(key="intervene_vertex").set_value(2).run()
    assert not at.exception and not at.error
    check_against_probe(at, run_dir, np.array([7]), 2)


def test_intervening_on_a_class(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_view(run_dir, monkeypatch)
    at.radio(key="intervene_scope").set_value("every test image of a class").run()
    at.selectbox(key="intervene_class").set_value(4).run()
    at.selectbox(key="intervene_vertex").set_value(1).run()
    assert not at.exception and not at.error
    labels = np.load(run_dir / "labels.npy")
    rows = np.flatnonzero(labels == 4)
    assert len(rows) >= 2
    check_against_probe(at, run_dir, rows, 1)


def test_a_run_without_the_input_scaling_says_how_to_get_it(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = Path(shutil.copytree(run_dir, tmp_path / "old"))
    path = old / "sem" / "relevance" / "probe.npz"
    with np.load(path) as npz:
        kept = {k: npz[k] for k in npz.files if not k.startswith("input_")}
    np.savez(path, **kept)
    at = open_view(old, monkeypatch, errors=True)
    assert any("lacks the input scaling" in e.value for e in at.error)
    assert [h.value for h in at.header] == [f"Simplex {SIMPLEX}"]  # the rest of the view works
