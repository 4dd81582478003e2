"""The dashboard, driven in-process with Streamlit's AppTest on a real run directory.

The run is produced once per session by ``run_relevance`` on two tiny random-init checkpoints
(a SEM model and a baseline without SEM) and the synthetic data set; every value the app shows
is checked against a computation made here, with numpy, from the run's files.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from semprobe.checkpoint import save_model
from semprobe.model import ModelSpec, SEMModel

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")
L, V = 8, 5


def build_run(base: Path) -> Path:
    """A relevance run of a SEM model (L=8, V=5) and a baseline, on 200 synthetic test images.

    Built once under ``base`` (the session's temporary directory) and reused by every test
    module that asks for it.
    """
    from semprobe.analysis import RelevanceSettings
    from semprobe.data import open_dataset
    from semprobe.extraction import ExtractionOptions
    from semprobe.studies import run_relevance

    out = base / "dashboard-run"
    if (out / "run.json").is_file():
        return out
    work = base / "dashboard-run-inputs"
    work.mkdir(exist_ok=True)
    checkpoints = []
    for name, spec in (
        ("sem", ModelSpec("small_cnn", num_simplices=L, vocab=V, tau=0.5, dataset="synthetic")),
        ("baseline", ModelSpec("small_cnn", dataset="synthetic")),
    ):
        torch.manual_seed(0)
        path = work / f"{name}.pt"
        save_model(SEMModel(spec).eval(), path)
        checkpoints.append(str(path))
    options = ExtractionOptions(
        dataset="synthetic:train=4,test=2", cache_dir=work / "cache", progress=False
    )
    # A second grouping (classes by index modulo 7) beside the planted superclasses.
    groups = work / "groups.csv"
    names = open_dataset("synthetic:train=4,test=2", "test").class_names
    groups.write_text(
        "class,superclass\n" + "".join(f"{c},g{i % 7}\n" for i, c in enumerate(names))
    )
    settings = RelevanceSettings(
        superclasses=f"coarse,file:{groups}", k=3, k_max=5, permutations=50, epochs=5
    )
    with warnings.catch_warnings():
        # Five probe epochs are enough for a fixture; the probe says it has not converged.
        warnings.filterwarnings("ignore", message=".*did not converge.*")
        run_relevance(checkpoints, options, settings, out)
    return out


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run of :func:`build_run`."""
    return build_run(tmp_path_factory.getbasetemp())


@pytest.fixture
def app(run_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """An AppTest of the dashboard with ``run_dir`` opened; ``app(view)`` runs it on a view."""
    monkeypatch.setenv("SEMPROBE_RUNS", str(run_dir))

    def start(view: str = "Runs", **params: str) -> AppTest:
        at = AppTest.from_file(SCRIPT, default_timeout=60)
        at.query_params["view"] = view
        for key, value in params.items():
            at.query_params[key] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return start


def ok(at: AppTest) -> AppTest:
    """Run ``at`` and require a page without traceback or error."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}: {[m.label for m in at.metric]}"
    return values[0]


def headers(at: AppTest) -> list[str]:
    return [h.value for h in at.header]


def entropy_numpy(run_dir: Path, simplex: int, tau: float) -> np.ndarray:
    """Per-image entropy of one simplex, float64, straight from logits.npy."""
    z = np.load(run_dir / "sem" / "logits.npy").astype(np.float64)
    z = z[:, simplex * V : (simplex + 1) * V] / tau
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -(np.exp(log_p) * log_p).sum(axis=1)


def probs_numpy(run_dir: Path, simplex: int, tau: float) -> np.ndarray:
    z = np.load(run_dir / "sem" / "logits.npy").astype(np.float64)
    z = z[:, simplex * V : (simplex + 1) * V] / tau
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def coef(run_dir: Path, model: str = "sem") -> np.ndarray:
    with np.load(run_dir / model / "relevance" / "probe.npz") as npz:
        return np.asarray(npz["coef"], dtype=np.float64)


def plotly_y(trace: dict) -> np.ndarray:
    """The y values of a plotly trace as the page received it."""
    y = trace["y"]
    if isinstance(y, dict):  # plotly's binary encoding of a numpy array
        y = np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])
    return np.asarray(y, dtype=float)


def library_entropy(run_dir: Path, taus: list[float]):
    """``entropy_report`` on the run's SEM logits, labels, classes and superclasses."""
    from semprobe.entropy import entropy_report

    classes = json.loads((run_dir / "classes.json").read_text())
    names, supers = classes["class_names"], classes["superclass_of"]
    return entropy_report(
        np.load(run_dir / "sem" / "logits.npy"),
        L,
        V,
        taus,
        labels=np.load(run_dir / "labels.npy"),
        class_names=names,
        superclass_of=[supers[n] for n in names],
    )


def by_tau(table: pd.DataFrame, index: str) -> pd.DataFrame:
    """A per-class or per-superclass table as the entropy view pivots it."""
    wide = table.pivot_table(index=index, columns="tau", values="mean")
    wide.columns = [f"tau={t:g}" for t in wide.columns]
    return wide


# ---------------------------------------------------------------------------------------------
# Run picker
# ---------------------------------------------------------------------------------------------


def test_runs_view_shows_every_model_with_its_summary(app, run_dir: Path) -> None:
    at = app("Runs")
    assert not at.error
    table = at.dataframe[0].value
    assert list(table["model"]) == ["sem", "baseline"]
    assert list(table["kind"]) == ["SEM", "baseline"]
    sem = table[table["model"] == "sem"].iloc[0]
    assert (sem["L"], sem["V"], sem["tau (pretraining)"]) == (L, V, 0.5)
    summary = json.loads((run_dir / "sem" / "relevance" / "summary.json").read_text())
    assert sem["top1"] == pytest.approx(summary["probe"]["top1"])
    assert sem["K"] == 3
    assert metric(at, "Test images") == "200"
    assert metric(at, "Classes") == "100"


def test_a_run_typed_in_the_sidebar_is_opened(app, run_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "copy"
    shutil.copytree(run_dir, other)
    at = app("Runs")
    at.text_input(key="new_run").input(str(other))
    ok(at)
    table = at.dataframe[0].value
    assert list(table["run"]) == [run_dir.name] * 2 + ["copy"] * 2
    assert at.selectbox(key="model").options == [
        f"{run_dir.name}/sem",
        f"{run_dir.name}/baseline",
        "copy/sem",
        "copy/baseline",
    ]


# ---------------------------------------------------------------------------------------------
# Simplex browser
# ---------------------------------------------------------------------------------------------


def test_simplex_switch_and_tau_slider_show_the_numpy_entropy(app, run_dir: Path) -> None:
    at = app("Simplices")
    assert headers(at) == ["Simplex 0"]
    assert at.select_slider(key="tau").value == 0.5  # the model's pre-training tau
    at.number_input(key="simplex").set_value(3)
    ok(at)
    assert headers(at) == ["Simplex 3"]
    for tau in (0.1, 1.0, 10.0):
        at.select_slider(key="tau").set_value(tau)
        ok(at)
        shown = float(metric(at, "Mean entropy H (nats)"))
        expected = entropy_numpy(run_dir, 3, tau).mean()
        assert shown == pytest.approx(expected, abs=6e-5), tau
        assert float(metric(at, "H / ln V")) == pytest.approx(expected / math.log(V), abs=6e-4)
    assert any(f"tau={10:g}" in c.value for c in at.caption)


def test_simplex_vertices_show_top_images_and_concepts(app, run_dir: Path) -> None:
    simplex, tau = 2, 1.0
    # The simplex and tau come from the URL, as in a shared link.
    at = app("Simplices", simplex=str(simplex), tau="1")
    assert at.select_slider(key="tau").value == tau
    assert headers(at) == [f"Simplex {simplex}"]
    vertices = [h.value for h in at.get("html") if h.value.startswith('<div class="sp-vertex">')]
    assert len(vertices) == V
    probs = probs_numpy(run_dir, simplex, tau)
    concepts = pd.read_csv(run_dir / "sem" / "relevance" / "feature_concepts.csv")
    here = concepts[concepts["simplex"] == simplex].set_index("vertex")
    for v, fragment in enumerate(vertices):
        assert f"<b>Vertex {v}</b>" in fragment
        assert fragment.count("<img") == 8
        shown = [int(i) for i in re.findall(r'title="test image (\d+):', fragment)]
        assert len(shown) == 8 and len(set(shown)) == 8
        # The images are the vertex's most activated ones, strongest first.
        ranked = np.sort(probs[:, v])[::-1]
        assert probs[shown, v] == pytest.approx(ranked[:8], abs=1e-5)
        if v in here.index:
            assert f"concept <b>{here.loc[v, 'concept']}</b>" in fragment
        else:
            assert "not kept in W_K" in fragment
    kept = f"{len(here)}/{V}"
    assert metric(at, "Vertices kept in W_K") == kept


def test_order_by_probe_weight_mass_and_relevance(app, run_dir: Path) -> None:
    at = app("Simplices")
    at.selectbox(key="order").set_value("probe weight mass")
    ok(at)
    mass = np.abs(coef(run_dir)).reshape(-1, L, V).sum(axis=(0, 2))
    order = np.lexsort((np.arange(L), -mass))
    assert headers(at) == [f"Simplex {order[0]}"]
    assert float(metric(at, "Probe weight mass")) == pytest.approx(mass[order[0]], abs=1e-3)
    at.number_input(key="rank").set_value(2)
    ok(at)
    assert headers(at) == [f"Simplex {order[1]}"]

    at.selectbox(key="order").set_value("entropy (lowest first)")
    at.number_input(key="rank").set_value(1)
    ok(at)
    means = [entropy_numpy(run_dir, s, 0.5).mean() for s in range(L)]
    assert headers(at) == [f"Simplex {int(np.argmin(means))}"]

    at.selectbox(key="order").set_value("relevance contribution")
    ok(at)
    concepts = pd.read_csv(run_dir / "sem" / "relevance" / "feature_concepts.csv")
    kept = np.bincount(concepts["simplex"], minlength=L)
    coherent = np.bincount(concepts["simplex"], weights=concepts["coherent"], minlength=L)
    best = np.lexsort((np.arange(L), -kept, -coherent))[0]
    assert headers(at) == [f"Simplex {best}"]


# ---------------------------------------------------------------------------------------------
# Graph
# ---------------------------------------------------------------------------------------------


def _top_k_numpy(w: np.ndarray, k: int) -> np.ndarray:
    """Incidence matrix of W_K: each category's top-k strictly positive weights."""
    b = np.zeros_like(w, dtype=np.int64)
    for c in range(w.shape[0]):
        for f in np.argsort(-w[c], kind="stable")[:k]:
            if w[c, f] > 0:
                b[c, f] = 1
    return b


def test_graph_view_recomputes_w_k_and_two_neighbours(app, run_dir: Path) -> None:
    at = app("Graph")
    assert metric(at, "Edges in W_K") == str(_top_k_numpy(coef(run_dir), 3).sum())
    at.slider(key="k").set_value(2)
    at.selectbox(key="category").set_value(7)
    ok(at)
    w = coef(run_dir)
    incidence = _top_k_numpy(w, 2)
    assert metric(at, "Edges in W_K") == str(incidence.sum())
    assert incidence.sum() <= w.shape[0] * 2
    classes = json.loads((run_dir / "classes.json").read_text())
    names, supers = classes["class_names"], classes["superclass_of"]
    shared = incidence @ incidence.T
    np.fill_diagonal(shared, 0)
    expected = {names[j]: int(shared[7, j]) for j in np.flatnonzero(shared[7])}
    table = next(d.value for d in at.dataframe if "neighbour" in d.value.columns)
    assert dict(zip(table["neighbour"], table["shared_features"], strict=True)) == expected
    same = {n for n in expected if supers[n] == supers[names[7]]}
    assert set(table.loc[table["same_superclass"], "neighbour"]) == same
    assert f"2-neighbours of {names[7]}" in [s.value for s in at.subheader]
    assert metric(at, "Isolated categories") == str(int(np.count_nonzero(shared.sum(axis=1) == 0)))


def test_graph_of_the_baseline(app, run_dir: Path) -> None:
    at = app("Graph", model=f"{run_dir.name}/baseline")
    assert metric(at, "Edges in W_K") == str(_top_k_numpy(coef(run_dir, "baseline"), 3).sum())
    assert not at.error


# ---------------------------------------------------------------------------------------------
# Relevance, entropy, comparison
# ---------------------------------------------------------------------------------------------


def test_relevance_view_has_every_model(app, run_dir: Path) -> None:
    at = app("Relevance")
    assert not at.error
    assert at.multiselect(key="curves").value == [f"{run_dir.name}/sem", f"{run_dir.name}/baseline"]
    table = at.dataframe[0].value
    for model in ("sem", "baseline"):
        summary = json.loads((run_dir / model / "relevance" / "summary.json").read_text())
        row = table[table["model"] == model].iloc[0]
        assert row["K"] == summary["relevance"]["k"]
        assert row["null mean"] == pytest.approx(summary["relevance"]["null_mean"])
        by_source = at.dataframe[1].value
        mine = by_source[by_source["model"] == model].set_index("superclasses")
        assert list(mine.index) == list(summary["relevance_by_superclasses"])
        assert mine["groups"].iloc[1] == 7
        for source, entry in summary["relevance_by_superclasses"].items():
            assert mine.loc[source, "z"] == pytest.approx(entry["relevance"]["z"])
    assert len(at.get("plotly_chart")) == 1


def test_relevance_curve_follows_the_chosen_superclass_grouping(app, run_dir: Path) -> None:
    at = app("Relevance")
    radio = at.radio(key="curve_superclasses")
    sources = list(
        json.loads((run_dir / "sem" / "relevance" / "summary.json").read_text())[
            "relevance_by_superclasses"
        ]
    )
    assert list(radio.options) == sources and radio.value == "coarse"
    radio.set_value(sources[1])
    ok(at)
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sources[1] in figure["layout"]["title"]["text"]
    curves = pd.read_csv(run_dir / "sem" / "relevance" / "curves_by_superclasses.csv")
    expected = curves[curves["superclasses"] == sources[1]]["mean"].to_numpy()
    shown = next(
        tr
        for tr in figure["data"]
        if tr["name"].startswith(f"{run_dir.name}/sem (") and tr.get("mode") == "lines+markers"
    )
    y = shown["y"]
    if isinstance(y, dict):  # plotly's binary encoding of a numpy array
        y = np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])
    np.testing.assert_allclose(np.asarray(y, dtype=float), expected)
    coarse = pd.read_csv(run_dir / "sem" / "relevance" / "curve.csv")["mean"].to_numpy()
    assert not np.allclose(expected, coarse)


def test_entropy_view_shows_the_tables_of_entropy_report(app, run_dir: Path) -> None:
    taus = [0.5, 2.0]
    at = app("Entropy")
    at.multiselect(key="entropy_taus").set_value(taus)
    ok(at)
    report = library_entropy(run_dir, taus)
    summary = next(d.value for d in at.dataframe if "frac_one_hot" in d.value.columns)
    pd.testing.assert_frame_equal(summary.reset_index(drop=True), report.summary, rtol=1e-6)
    tables = [d.value for d in at.dataframe if "tau=0.5" in d.value.columns]
    per_class = next(t for t in tables if t.index.name == "class")
    pd.testing.assert_frame_equal(per_class, by_tau(report.per_class, "class"), rtol=1e-6)
    per_super = next(t for t in tables if t.index.name == "superclass")
    expected = by_tau(report.per_superclass, "superclass")
    pd.testing.assert_frame_equal(per_super, expected, rtol=1e-6)
    histogram, ranked = (json.loads(c.proto.spec) for c in at.get("plotly_chart")[:2])
    for i, tau in enumerate(taus):
        counts = report.histogram[report.histogram["tau"] == tau]["count"].to_numpy()
        assert histogram["data"][i]["name"] == f"tau={tau:g}"
        np.testing.assert_allclose(plotly_y(histogram["data"][i]), counts / counts.sum())
        means = report.per_simplex[report.per_simplex["tau"] == tau]["mean"].to_numpy()
        np.testing.assert_allclose(plotly_y(ranked["data"][i]), np.sort(means), rtol=1e-6)
    # The library's numbers themselves, against numpy on two classes.
    labels = np.load(run_dir / "labels.npy")
    names = json.loads((run_dir / "classes.json").read_text())["class_names"]
    h = np.stack([entropy_numpy(run_dir, s, 0.5) for s in range(L)], axis=1)
    for c in (0, 41):
        assert per_class.loc[names[c], "tau=0.5"] == pytest.approx(h[labels == c].mean(), abs=1e-5)


def test_entropy_view_reads_a_precomputed_report(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from semprobe.entropy import entropy_report

    study = tmp_path / "study"
    shutil.copytree(run_dir, study)
    labels = np.load(study / "labels.npy")
    names = json.loads((study / "classes.json").read_text())["class_names"]
    report = entropy_report(
        np.load(study / "sem" / "logits.npy"), L, V, [0.2, 5.0], labels=labels, class_names=names
    )
    report.to_dir(study / "sem" / "entropy")
    monkeypatch.setenv("SEMPROBE_RUNS", str(study))
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.query_params["view"] = "Entropy"
    at.run()
    at.radio(key="entropy_source").set_value("report")
    ok(at)
    summary = next(d.value for d in at.dataframe if "frac_one_hot" in d.value.columns)
    assert list(summary["tau"]) == [0.2, 5.0]
    pd.testing.assert_frame_equal(summary.reset_index(drop=True), report.summary)
    per_class = next(d.value for d in at.dataframe if "tau=0.2" in d.value.columns)
    pd.testing.assert_frame_equal(per_class, by_tau(report.per_class, "class"))
    h = np.stack([entropy_numpy(study, s, 0.2) for s in range(L)], axis=1)
    assert per_class.loc[names[5], "tau=0.2"] == pytest.approx(h[labels == 5].mean(), abs=1e-4)

    # Switching to a model without a report falls back to the live computation.
    monkeypatch.setenv("SEMPROBE_RUNS", os.pathsep.join([str(study), str(run_dir)]))
    at.run()
    at.selectbox(key="model").set_value(f"{run_dir.name}/sem")
    ok(at)
    assert at.radio(key="entropy_source").options == ["live from the logits"]
    summary = next(d.value for d in at.dataframe if "frac_one_hot" in d.value.columns)
    taus = sorted(at.multiselect(key="entropy_taus").value)
    live = library_entropy(run_dir, taus).summary
    pd.testing.assert_frame_equal(summary.reset_index(drop=True), live, rtol=1e-6)

    # A report file that links out of the run is refused, not read.
    target = study / "sem" / "entropy" / "summary.parquet"
    outside = tmp_path / "elsewhere.parquet"
    target.rename(outside)
    target.symlink_to(outside)
    # Runs are immutable once written; a rebuilt run has a new run.json, which the caches key on.
    stat = (study / "run.json").stat()
    os.utime(study / "run.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.query_params["view"] = "Entropy"
    at.run()
    assert not at.exception
    assert any("outside the run" in e.value for e in at.error)


def test_compare_view_shows_both_models(app, run_dir: Path) -> None:
    at = app("Compare")
    assert not at.error
    assert [s.value for s in at.subheader] == [
        f"{run_dir.name}/sem (SEM)",
        f"{run_dir.name}/baseline (baseline)",
    ]
    edges = [m.value for m in at.metric if m.label.startswith("Edges in W_K")]
    assert edges == [str(_top_k_numpy(coef(run_dir, m), 3).sum()) for m in ("sem", "baseline")]
    at.number_input(key="compare_k").set_value(1)
    ok(at)
    edges = [m.value for m in at.metric if m.label.startswith("Edges in W_K")]
    assert edges == [str(_top_k_numpy(coef(run_dir, m), 1).sum()) for m in ("sem", "baseline")]


def test_a_comparison_opens_from_its_url(app, run_dir: Path) -> None:
    """The two models are URL parameters, so a comparison is a link to share."""
    swapped = app("Compare", compare_a=f"{run_dir.name}/baseline", compare_b=f"{run_dir.name}/sem")
    assert [s.value for s in swapped.subheader] == [
        f"{run_dir.name}/baseline (baseline)",
        f"{run_dir.name}/sem (SEM)",
    ]


# ---------------------------------------------------------------------------------------------
# Damaged run directories
# ---------------------------------------------------------------------------------------------


def test_bad_run_directories_show_errors_and_the_rest_works(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    partial = tmp_path / "partial"
    partial.mkdir()
    malformed = tmp_path / "malformed"
    malformed.mkdir()
    (malformed / "run.json").write_text('{"semprobe_run": 1, "models": [')
    truncated = tmp_path / "truncated"
    shutil.copytree(run_dir, truncated)
    logits = truncated / "sem" / "logits.npy"
    logits.write_bytes(logits.read_bytes()[:300])
    runs = [partial, malformed, tmp_path / "missing", truncated, run_dir]
    monkeypatch.setenv("SEMPROBE_RUNS", os.pathsep.join(map(str, runs)))

    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.query_params["view"] = "Simplices"
    at.query_params["model"] = "truncated/sem"
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("partial" in e and "not a complete semprobe run (no run.json)" in e for e in errors)
    assert any("malformed" in e and "cannot read" in e for e in errors)
    assert any("missing" in e and "does not exist" in e for e in errors)
    assert any("logits.npy" in e and "cannot read" in e for e in errors)
    # The good run is still there and its simplex browser works.
    good = f"{run_dir.name}/sem"
    assert at.selectbox(key="model").options[-2:] == [good, f"{run_dir.name}/baseline"]
    at.selectbox(key="model").set_value(good)
    at.run()
    assert headers(at) == ["Simplex 0"]
    assert all(good not in e for e in (e.value for e in at.error))


def test_a_model_name_leading_outside_the_run_is_refused(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evil = tmp_path / "evil"
    shutil.copytree(run_dir, evil)
    outside = tmp_path / "x"
    shutil.copytree(run_dir / "sem", outside)  # a plausible model just outside the run
    meta = json.loads((evil / "run.json").read_text())
    meta["models"] = ["../x", "sem"]
    (evil / "run.json").write_text(json.dumps(meta))
    monkeypatch.setenv("SEMPROBE_RUNS", str(evil))
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("'../x'" in e and "outside the run" in e for e in errors), errors
    assert at.selectbox(key="model").options == ["evil/sem"]


def test_no_run_given_shows_how_to_open_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEMPROBE_RUNS", raising=False)
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.run()
    assert not at.exception
    assert any("Open a run directory" in i.value for i in at.info)


# ---------------------------------------------------------------------------------------------
# How run directories reach the app, and the command
# ---------------------------------------------------------------------------------------------


def test_run_dirs_come_from_streamlit_args_and_the_environment() -> None:
    from semprobe.app.data import DASHBOARD_SCRIPT, requested_runs

    env = {"SEMPROBE_RUNS": "c:d"}
    assert requested_runs([str(DASHBOARD_SCRIPT), "a", "b"], env) == ["a", "b", "c", "d"]
    # Another program's command line (pytest's) is not taken for run directories.
    assert requested_runs(["pytest", "tests/x.py"], {}) == []
    assert requested_runs([str(DASHBOARD_SCRIPT), "a"], {"SEMPROBE_RUNS": "a"}) == ["a"]


def test_dashboard_command_line() -> None:
    from semprobe.app import launch
    from semprobe.cli.arguments import build_parser

    args = build_parser().parse_args(["dashboard", "r1", "r2", "--port", "9000"])
    assert (args.run_dirs, args.port, args.address) == (["r1", "r2"], 9000, "127.0.0.1")
    assert args.handler is not None
    cmd = launch.command(["r1"], port=9000)
    assert cmd[cmd.index("--server.port") + 1] == "9000"
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[-2] == "--" and Path(cmd[-1]).name == "r1" and Path(cmd[-1]).is_absolute()


def test_launch_warns_about_bad_runs_and_serves(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from semprobe.app import launch

    started: list[list[str]] = []

    class FakeServer:
        def __init__(self, cmd: list[str]) -> None:
            started.append(cmd)

        def wait(self, timeout: float | None = None) -> int:
            return 0

    monkeypatch.setattr(launch.subprocess, "Popen", FakeServer)
    assert launch.main([str(run_dir), str(tmp_path / "nope")], port=8600) == 0
    err = capsys.readouterr().err
    assert "does not exist" in err and "http://127.0.0.1:8600" in err
    assert started[0][-2:] == [str(run_dir), str(tmp_path / "nope")]
    assert started[0][1:5] == ["-P", "-m", "semprobe.app.launch", "run"]
    assert started[0][5].endswith("dashboard.py")
