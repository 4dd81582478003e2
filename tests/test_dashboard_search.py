"""The search view, in AppTest, against the run's probe.npz, logits and feature_concepts.csv."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_dashboard import build_run

    source = build_run(tmp_path_factory.getbasetemp())
    return Path(shutil.copytree(source, tmp_path_factory.mktemp("search") / "run"))


@pytest.fixture
def search(run_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SEMPROBE_RUNS", str(run_dir))

    def start(mode: str) -> AppTest:
        at = AppTest.from_file(SCRIPT, default_timeout=60)
        at.query_params["view"] = "Search"
        at.query_params["model"] = f"{run_dir.name}/sem"
        at.run()
        at.radio(key="search_by").set_value(mode).run()
        assert not at.exception and not at.error, [e.value for e in at.exception]
        return at

    return start


def table(at: AppTest, first: list[str]) -> pd.DataFrame:
    found = [d.value for d in at.dataframe if list(d.value.columns[: len(first)]) == first]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


def files(run_dir: Path) -> tuple[np.ndarray, dict, dict]:
    with np.load(run_dir / "sem" / "relevance" / "probe.npz") as npz:
        probe = {k: npz[k].astype(np.float64) for k in npz.files}
    spec = json.loads((run_dir / "sem" / "model.json").read_text())["spec"]
    classes = json.loads((run_dir / "classes.json").read_text())
    return probe["coef"], spec, {"probe": probe, **classes}


def test_by_class_and_by_superclass(search, run_dir: Path) -> None:
    coef, spec, classes = files(run_dir)
    names, supers = classes["class_names"], classes["superclass_of"]
    at = search("class or superclass")
    for choice, members in (
        (f"class: {names[3]}", [3]),
        (
            f"superclass: {supers[names[0]]}",
            [i for i, c in enumerate(names) if supers[c] == supers[names[0]]],
        ),
    ):
        at.selectbox(key="search_class").set_value(choice).run()
        assert not at.exception and not at.error
        shown = table(at, ["simplex", "vertex", "feature", "weight"])
        w = coef[members].mean(axis=0)
        top = [j for j in np.argsort(-w, kind="stable")[:20] if w[j] > 0]
        assert list(shown["feature"]) == top
        assert list(shown["simplex"]) == [j // spec["vocab"] for j in top]
        np.testing.assert_allclose(shown["weight"], w[top], rtol=1e-6)
    assert len(members) > 1  # the superclass is a mean over several classes


def test_by_concept_label(search, run_dir: Path) -> None:
    concepts = pd.read_csv(run_dir / "sem" / "relevance" / "feature_concepts.csv")
    word = str(concepts["categories"].iloc[0]).split(";")[0]
    at = search("concept label")
    at.text_input(key="search_concept").input(word.upper()).run()
    assert not at.exception and not at.error
    shown = table(at, ["simplex", "vertex", "concept", "categories"])
    low = word.lower()
    expected = concepts[
        concepts["concept"].str.lower().str.contains(low, regex=False)
        | concepts["categories"].str.lower().str.contains(low, regex=False)
    ]
    assert len(shown) == len(expected) >= 1
    assert list(zip(shown["simplex"], shown["vertex"], strict=True)) == list(
        zip(expected["simplex"], expected["vertex"], strict=True)
    )


def test_by_image(search, run_dir: Path) -> None:
    coef, spec, info = files(run_dir)
    probe = info["probe"]
    n_simplices, v, tau = spec["num_simplices"], spec["vocab"], spec["tau"]
    image = 11
    z = np.load(run_dir / "sem" / "logits.npy")[image].astype(np.float64) / tau
    z = z.reshape(n_simplices, v)
    sem = np.exp(z - z.max(axis=1, keepdims=True))
    sem /= sem.sum(axis=1, keepdims=True)
    x = (sem.reshape(-1) - probe["input_mean"]) / probe["input_std"]
    scores = x @ coef.T + probe["intercept"]
    predicted = int(np.argmax(scores))

    at = search("test image")
    at.number_input(key="search_image").set_value(image).run()
    assert not at.exception and not at.error
    line = next(m.value for m in at.markdown if m.value.startswith(f"Test image {image}:"))
    assert f"the probe predicts **{info['class_names'][predicted]}**" in line
    assert re.search(rf"score {scores[predicted]:.3f}\)", line)
    shown = table(at, ["simplex", "vertex", "activation", "contribution"])
    parts = (x * coef[predicted]).reshape(n_simplices, v).sum(axis=1)
    assert len(shown) == min(30, n_simplices)
    assert list(shown["simplex"]) == list(np.argsort(-parts, kind="stable")[: len(shown)])
    np.testing.assert_allclose(shown["contribution"], parts[shown["simplex"]], atol=1e-9)
    assert list(shown["vertex"]) == list(sem.argmax(axis=1)[shown["simplex"]])
    # The contributions of every simplex and the intercept make up the score.
    assert parts.sum() + probe["intercept"][predicted] == pytest.approx(scores[predicted])


def test_a_baseline_has_nothing_to_search(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMPROBE_RUNS", str(run_dir))
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.query_params["view"] = "Search"
    at.query_params["model"] = f"{run_dir.name}/baseline"
    at.run()
    assert not at.exception
    assert any("without a SEM layer" in i.value for i in at.info)
