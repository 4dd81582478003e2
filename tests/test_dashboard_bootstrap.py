"""The relevance view of a run made with ``--bootstrap``: error bars and the intervals table."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import save_tiny

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from semprobe.analysis import RelevanceSettings
    from semprobe.extraction import ExtractionOptions
    from semprobe.studies import run_relevance

    root = tmp_path_factory.mktemp("dashboard-bootstrap")
    sem = save_tiny(root / "sem.pt", seed=1)
    options = ExtractionOptions(
        dataset="synthetic:train=4,test=1", cache_dir=root / "cache", progress=False
    )
    settings = RelevanceSettings(
        k=3, k_max=4, permutations=20, epochs=10, reference="random-init", bootstrap=4
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*did not converge.*")
        run_relevance([sem], options, settings, root / "run")
    return root / "run"


def _numbers(values: object) -> np.ndarray:
    if isinstance(values, dict):  # plotly's binary encoding of a numpy array
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=float)


def test_the_relevance_view_shows_the_bootstrap(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMPROBE_RUNS", str(run_dir))
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.query_params["view"] = "Relevance"
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    boot = pd.read_csv(run_dir / "sem" / "relevance" / "bootstrap.csv")
    curve = boot[boot["statistic"] == "curve_mean"].sort_values("k")
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = [t for t in figure["data"] if t["name"].endswith(": bootstrap interval")]
    # One set of error bars per bootstrapped model: the model and its twin.
    assert len(bars) == 2
    mine = next(t for t in bars if t["name"].startswith(f"{run_dir.name}/sem ("))
    np.testing.assert_allclose(_numbers(mine["y"]), curve["estimate"])
    np.testing.assert_allclose(
        _numbers(mine["error_y"]["array"]), curve["high"] - curve["estimate"], atol=1e-12
    )
    np.testing.assert_allclose(
        _numbers(mine["error_y"]["arrayminus"]), curve["estimate"] - curve["low"], atol=1e-12
    )
    assert [h.value for h in at.subheader] == ["Bootstrap intervals at K"]
    table = next(d.value for d in at.dataframe if "lift vs random init" in d.value.columns)
    row = table[table["model"] == "sem"].iloc[0]
    rel = boot[boot["statistic"] == "relevance_mean"].iloc[0]
    assert row["relevance mean"] == f"{rel.estimate:.3f} [{rel.low:.3f}, {rel.high:.3f}]"
    assert row["resamples"] == 4
    lift = boot[boot["statistic"] == "lift_vs_random_init"].iloc[0]
    contains_zero = lift.low <= 0 <= lift.high
    assert row["lift"] == ("not established" if contains_zero else "established")
    twin = table[table["model"] == "sem-random-init"].iloc[0]
    assert twin["lift vs random init"] == "-" and twin["lift"] == ""
