"""The simplex browser's vertex detail, in AppTest, against the run's own files: examples across
the activation range, the activation histogram and the probe's signed votes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")
BANDS = ["top 1 %", "90-99 %", "50-90 %", "10-50 %", "bottom 10 %"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_dashboard import build_run

    source = build_run(tmp_path_factory.getbasetemp())
    return Path(shutil.copytree(source, tmp_path_factory.mktemp("vertex") / "run"))


def activations(run_dir: Path, simplex: int, tau: float) -> np.ndarray:
    """softmax(z_simplex / tau) in float64 numpy, from the run's logits."""
    spec = json.loads((run_dir / "sem" / "model.json").read_text())["spec"]
    v = spec["vocab"]
    z = np.load(run_dir / "sem" / "logits.npy")[:, simplex * v : (simplex + 1) * v] / tau
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def bands_shown(at: AppTest) -> dict[str, list[int]]:
    """Band title -> the test-image indices of its examples, in the order shown."""
    shown = {}
    for block in at.get("html"):
        body = block.proto.body
        title = re.search(r'class="sp-head">([^<]*) of the test images by activation', body)
        if title:
            shown[title.group(1)] = [int(i) for i in re.findall(r'title="test image (\d+):', body)]
    return shown


@pytest.mark.parametrize(("simplex", "vertex"), [(2, 0), (5, 3)])
def test_vertex_detail_matches_the_run(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, simplex: int, vertex: int
) -> None:
    monkeypatch.setenv("SEMPROBE_RUNS", str(run_dir))
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.query_params["view"] = "Simplices"
    at.query_params["simplex"] = str(simplex)
    at.run()
    at.selectbox(key="vertex").set_value(vertex).run()
    assert not at.exception and not at.error, [e.value for e in at.exception]

    act = activations(run_dir, simplex, tau=0.5)[:, vertex]  # the model's own tau
    n = len(act)
    shown = bands_shown(at)
    assert list(shown) == BANDS
    # Band sizes of 200 images: 2, 18, 80, 80, 20; six examples at most, highest first.
    assert [len(shown[b]) for b in BANDS] == [2, 6, 6, 6, 6]
    everything = [i for b in BANDS for i in shown[b]]
    assert len(set(everything)) == len(everything)
    values = act[everything]
    assert np.all(np.diff(values) <= 1e-6)  # bands in order, each highest first
    assert everything[0] == int(np.argmax(act)) and everything[-1] == int(np.argmin(act))
    rank = {int(i): r for r, i in enumerate(np.argsort(-act, kind="stable"))}
    ranges = [(0, 0.01), (0.01, 0.1), (0.1, 0.5), (0.5, 0.9), (0.9, 1)]
    for band, (lo, hi) in zip(BANDS, ranges, strict=True):
        for i in shown[band]:  # each example's rank lies in its band
            assert lo * n - 1 <= rank[i] <= hi * n, (band, i, rank[i])

    chart = next(c for c in at.get("vega_lite_chart") if '"field": "from"' in c.proto.spec)
    assert json.loads(chart.proto.spec)["encoding"]["x"]["scale"]["domain"] == [0, 1]
    fractions = _chart_column(chart, "fraction")
    expected, _ = np.histogram(act, bins=20, range=(0.0, 1.0))
    np.testing.assert_allclose(fractions, expected / n, atol=1e-12)

    coef = np.load(run_dir / "sem" / "relevance" / "probe.npz")["coef"]
    v = json.loads((run_dir / "sem" / "model.json").read_text())["spec"]["vocab"]
    w = coef[:, simplex * v + vertex]
    classes = json.loads((run_dir / "classes.json").read_text())
    names, supers = classes["class_names"], classes["superclass_of"]
    table = next(
        d.value for d in at.dataframe if list(d.value.columns) == ["class", "weight", "superclass"]
    )
    up = [names[c] for c in np.argsort(-w, kind="stable")[:5] if w[c] > 0]
    down = [names[c] for c in np.argsort(w, kind="stable")[:5] if w[c] < 0][::-1]
    assert list(table["class"]) == up + down
    np.testing.assert_allclose(table["weight"], [w[names.index(c)] for c in up + down], rtol=1e-6)
    assert list(table["superclass"]) == [supers[c] for c in up + down]


def _chart_column(chart: object, column: str) -> np.ndarray:
    import pyarrow as pa

    table = pa.ipc.open_stream(chart.proto.data.data).read_all().to_pandas()  # type: ignore[attr-defined]
    return table[column].to_numpy()
