"""The relevance and comparison views of a run made with ``--bootstrap``: error bars, the
intervals table and the paired difference of two models' lifts."""

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
    other = save_tiny(root / "other.pt", seed=2)
    options = ExtractionOptions(
        dataset="synthetic:train=4,test=1", cache_dir=root / "cache", progress=False
    )
    settings = RelevanceSettings(
        k=3, k_max=4, permutations=20, epochs=10, reference="random-init", bootstrap=4
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*did not converge.*")
        run_relevance([sem, other], options, settings, root / "run")
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
    # One set of error bars per bootstrapped model: two models and their twins.
    assert len(bars) == 4
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


def test_the_compare_view_shows_intervals_and_the_difference_of_lifts(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _compare(run_dir, monkeypatch, "other", "sem")

    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = [t for t in figure["data"] if t["name"].endswith(": bootstrap interval")]
    assert sorted(t["name"].split(" (")[0] for t in bars) == [
        f"{run_dir.name}/other",
        f"{run_dir.name}/sem",
    ]
    table = _intervals_table(at)
    for name in ("other", "sem"):
        boot = pd.read_csv(run_dir / name / "relevance" / "bootstrap.csv")
        lift = boot[boot["statistic"] == "lift_vs_random_init"].iloc[0]
        row = table.loc[f"{run_dir.name}/{name}"]
        assert (
            row["lift vs random init"]
            == f"{lift.estimate:+.3f} [{lift.low:+.3f}, {lift.high:+.3f}]"
        )
        assert row["resamples"] == 4 and row["K"] == 3

    # The run stores the pair once as sem - other; the view shows other - sem, so negated.
    diffs = pd.read_csv(run_dir / "lift_differences.csv")
    stored = diffs[(diffs["model"] == "sem") & (diffs["other"] == "other")].iloc[0]
    line = next(m.value for m in at.markdown if m.value.startswith("**Lift of other minus"))
    expected = f"{-stored.estimate:+.3f} [{-stored.high:+.3f}, {-stored.low:+.3f}]"
    assert expected in line
    assert line.endswith("not established" if stored.low <= 0 <= stored.high else " established")


def test_the_compare_view_says_when_no_paired_difference_exists(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A model against its own twin: the twin has no lift, so there is no pair to difference.
    at = _compare(run_dir, monkeypatch, "sem", "sem-random-init")
    assert any("No paired difference of lifts" in c.value for c in at.caption)
    table = _intervals_table(at)
    assert table.loc[f"{run_dir.name}/sem-random-init", "lift vs random init"] == "-"


def _intervals_table(at: AppTest) -> pd.DataFrame:
    frame = next(d.value for d in at.dataframe if "lift vs random init" in d.value.columns)
    return frame.set_index("model")


def _compare(run_dir: Path, monkeypatch: pytest.MonkeyPatch, left: str, right: str) -> AppTest:
    """The comparison view with ``left`` and ``right`` chosen, as a user picks them."""
    monkeypatch.setenv("SEMPROBE_RUNS", str(run_dir))
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.query_params["view"] = "Compare"
    at.run()
    at.selectbox(key="compare_a").set_value(f"{run_dir.name}/{left}").run()
    at.selectbox(key="compare_b").set_value(f"{run_dir.name}/{right}").run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    return at
