"""The simplex browser's mutual information, in AppTest, against scikit-learn on the run's files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mutual_info_score, normalized_mutual_info_score

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the dashboard tests' run: the view keeps its MI table in it."""
    from tests.test_dashboard import build_run

    source = build_run(tmp_path_factory.getbasetemp())
    return Path(shutil.copytree(source, tmp_path_factory.mktemp("information") / "run"))


@pytest.fixture
def app(run_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SEMPROBE_RUNS", str(run_dir))

    def start(**params: str) -> AppTest:
        at = AppTest.from_file(SCRIPT, default_timeout=60)
        at.query_params["view"] = "Simplices"
        for key, value in params.items():
            at.query_params[key] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        return at

    return start


def direct(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Argmax vertex per image and simplex, classes and superclasses, from the run's files."""
    spec = json.loads((run_dir / "sem" / "model.json").read_text())["spec"]
    z = np.load(run_dir / "sem" / "logits.npy")
    a = z.reshape(len(z), spec["num_simplices"], spec["vocab"]).argmax(-1)
    classes = json.loads((run_dir / "classes.json").read_text())
    supers = np.array([classes["superclass_of"][c] for c in classes["class_names"]])
    y = np.load(run_dir / "labels.npy")
    return a, y, supers[y]


def metric(at: AppTest, label: str) -> float:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}: {[m.label for m in at.metric]}"
    return float(values[0])


def frame(at: AppTest, first_columns: list[str]) -> pd.DataFrame:
    found = [
        d.value
        for d in at.dataframe
        if list(d.value.columns[: len(first_columns)]) == first_columns
    ]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


def test_mi_of_the_shown_simplex_ranking_and_most_alike(app, run_dir: Path) -> None:
    a, y, super_y = direct(run_dir)
    n_simplices = a.shape[1]
    class_mi = np.array([mutual_info_score(y, a[:, s]) for s in range(n_simplices)])
    super_mi = np.array([mutual_info_score(super_y, a[:, s]) for s in range(n_simplices)])
    # A random-init model: some simplices put every image on one vertex (MI 0, baseline 0).
    live = [s for s in range(n_simplices) if len(np.unique(a[:, s])) > 1]
    assert len(live) >= 2
    for simplex in (live[0], live[-1]):
        at = app(simplex=str(simplex))
        assert [h.value for h in at.header] == [f"Simplex {simplex}"]
        assert metric(at, "MI with the class (nats)") == pytest.approx(class_mi[simplex], abs=6e-5)
        assert metric(at, "MI with the superclass (nats)") == pytest.approx(
            super_mi[simplex], abs=6e-5
        )
        ranking = frame(at, ["rank", "simplex", "mi_class"])
        assert len(ranking) == n_simplices
        assert ranking["mi_class"].to_numpy() == pytest.approx(
            class_mi[ranking["simplex"].to_numpy()], abs=1e-10
        )
        assert ranking["mi_superclass"].to_numpy() == pytest.approx(
            super_mi[ranking["simplex"].to_numpy()], abs=1e-10
        )
        excess = ranking["mi_class_excess"].to_numpy()
        assert np.all(np.diff(excess) <= 0)  # highest excess first
        by_simplex = ranking.set_index("simplex")
        assert (by_simplex.loc[live, "mi_class_baseline"] > 0).all()  # the plug-in bias
        dead = sorted(set(range(n_simplices)) - set(live))
        assert (by_simplex.loc[dead, ["mi_class", "mi_class_baseline"]] == 0).all(axis=None)
        shown = by_simplex.loc[simplex, "mi_class_excess"]
        assert metric(at, "Class MI over baseline") == pytest.approx(shown, abs=6e-5)

        alike = frame(at, ["simplex", "mi", "nmi"])
        assert simplex not in set(alike["simplex"]) and len(alike) == n_simplices - 1
        nmi = {
            t: normalized_mutual_info_score(a[:, simplex], a[:, t])
            for t in range(n_simplices)
            if t != simplex
        }
        assert alike["simplex"].iloc[0] == max(nmi, key=lambda t: (nmi[t], -t))
        for row in alike.itertuples():
            assert row.mi == pytest.approx(mutual_info_score(a[:, simplex], a[:, row.simplex]))
            assert row.nmi == pytest.approx(nmi[row.simplex])
    # The table the view showed is the one kept in the run directory.
    kept = pd.read_csv(run_dir / "sem" / "simplex_information.csv")
    assert kept["mi_class"].to_numpy() == pytest.approx(class_mi, abs=1e-10)


def test_order_by_mutual_information(app, run_dir: Path) -> None:
    a, y, _ = direct(run_dir)
    at = app()
    at.selectbox(key="order").set_value("mutual information with the class (excess)")
    at.run()
    assert not at.exception and not at.error
    kept = pd.read_csv(run_dir / "sem" / "simplex_information.csv")
    order = np.lexsort((kept["simplex"], -kept["mi_class_excess"]))
    assert [h.value for h in at.header] == [f"Simplex {order[0]}"]
    assert metric(at, "MI with the class (nats)") == pytest.approx(
        mutual_info_score(y, a[:, order[0]]), abs=6e-5
    )
    at.number_input(key="rank").set_value(2)
    at.run()
    assert [h.value for h in at.header] == [f"Simplex {order[1]}"]


def test_the_most_alike_list_can_be_hidden(app) -> None:
    at = app(simplex="1")
    assert at.toggle(key="mi_alike_on").value is True  # L = 8: shown by default
    assert any(list(d.value.columns) == ["simplex", "mi", "nmi"] for d in at.dataframe)
    at.toggle(key="mi_alike_on").set_value(False)
    at.run()
    assert not at.exception and not at.error
    assert not any(list(d.value.columns) == ["simplex", "mi", "nmi"] for d in at.dataframe)
    assert [h.value for h in at.header] == ["Simplex 1"]
