"""The relevance procedure end to end on real (tiny) models: files, consistency, determinism."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from semprobe.analysis import RelevanceSettings, probe_inputs, resolve_superclasses
from semprobe.concepts import feature_concepts, simplex_concepts
from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions
from semprobe.graph import top_k_graph, two_neighbours
from semprobe.relevance import relevance
from semprobe.rundir import Run
from semprobe.studies import run_relevance
from tests.conftest import save_tiny

DATASET = "synthetic:train=6,test=2"
SETTINGS = RelevanceSettings(k=4, k_max=6, permutations=100, epochs=30, reference="random-init")


@pytest.fixture(scope="module")
def relevance_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("relevance")
    sem = save_tiny(root / "sem.pt", seed=1)
    base = save_tiny(root / "base.pt", seed=2, num_simplices=0, vocab=0)
    options = ExtractionOptions(dataset=DATASET, cache_dir=root / "cache", progress=False)
    run_relevance([sem, base], options, SETTINGS, root / "run")
    return root / "run", sem, base


def test_run_directory_is_complete_and_consistent(relevance_run: tuple[Path, Path, Path]) -> None:
    out, _, _ = relevance_run
    run = Run(out)
    assert [m.name for m in run.models] == ["sem", "sem-random-init", "base", "base-random-init"]
    assert len(run.class_names) == 100
    assert run.thumbnails().shape == (200, 32, 32, 3)
    sem = run.model("sem")
    logits = sem.logits()
    assert logits is not None and logits.shape == (200, 40)
    assert run.model("base").logits() is None

    summary = sem.relevance_summary()
    assert summary is not None
    coef = np.load(out / "sem" / "relevance" / "probe.npz")["coef"]
    assert coef.shape == (100, 40)
    # The summary's relevance is what relevance() gives on the saved weights.
    superclasses = [run.superclass_of[c] for c in run.class_names]  # type: ignore[index]
    graph = top_k_graph(coef.astype(np.float64), 4)
    expected = relevance(two_neighbours(graph), superclasses)
    assert summary["relevance"]["total"] == pytest.approx(expected.total)
    assert summary["relevance"]["n_isolated"] == expected.n_isolated
    assert summary["probe"]["sparsity"] == pytest.approx(float(np.mean(coef == 0)))
    # Lift over the random-init twin is recorded.
    ref = run.model("sem-random-init").relevance_summary()
    assert ref is not None
    if summary["relevance"]["mean"] is not None and ref["relevance"]["mean"] is not None:
        assert summary["lift_vs_random_init"] == pytest.approx(
            summary["relevance"]["mean"] - ref["relevance"]["mean"]
        )

    table = pd.read_csv(out / "sem" / "relevance" / "category_features.csv")
    assert len(table) == graph.n_edges
    assert table.groupby("category")["rank"].max().max() <= 4
    curve = pd.read_csv(out / "sem" / "relevance" / "curve.csv")
    assert list(curve["k"]) == [1, 2, 3, 4, 5, 6]
    g = nx.read_graphml(out / "sem" / "relevance" / "graph.graphml")
    assert sum(1 for _, d in g.nodes(data=True) if d.get("kind") == "category") == 100
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison["model"]) == ["sem", "sem-random-init", "base", "base-random-init"]
    assert (out / "relevance_curve.html").stat().st_size > 1000


def test_rerun_is_byte_identical(relevance_run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    out, sem, base = relevance_run
    options = ExtractionOptions(dataset=DATASET, cache_dir=tmp_path / "cache", progress=False)
    run_relevance([sem, base], options, SETTINGS, tmp_path / "again")
    for name in ("summary.json", "probe.npz", "curve.csv", "category_features.csv"):
        assert (out / "sem" / "relevance" / name).read_bytes() == (
            tmp_path / "again" / "sem" / "relevance" / name
        ).read_bytes(), name


def test_standardised_inputs(relevance_run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from semprobe.checkpoint import load_model
    from semprobe.extraction import features

    _, sem, _ = relevance_run
    options = ExtractionOptions(dataset=DATASET, cache_dir=tmp_path, progress=False)
    model = load_model(sem).model
    train, test = features(model, options, "train"), features(model, options, "test")
    x_train, x_test = probe_inputs(train, test, "sem", 0.5)
    np.testing.assert_allclose(x_train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(x_train.std(0)[x_train.std(0) > 0.1], 1, atol=5e-3)
    raw_train, _ = probe_inputs(train, test, "sem", 0.5, standardize=False)
    np.testing.assert_allclose(raw_train.reshape(len(raw_train), 8, 5).sum(-1), 1, atol=1e-5)
    assert x_test.shape == (200, 40)


def test_several_superclass_sources_score_one_probe(
    relevance_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    out, sem, _ = relevance_run
    names = Run(out).class_names
    csv = tmp_path / "groups.csv"
    csv.write_text("class,superclass\n" + "".join(f"{c},g{i % 7}\n" for i, c in enumerate(names)))
    source = f"file:{csv}"
    settings = dataclasses.replace(SETTINGS, superclasses=f"coarse, {source}")
    assert settings.superclass_sources == ["coarse", source]
    options = ExtractionOptions(dataset=DATASET, cache_dir=tmp_path / "cache", progress=False)
    result = run_relevance([sem], options, settings, tmp_path / "run")

    rel = tmp_path / "run" / "sem" / "relevance"
    summary = json.loads((rel / "summary.json").read_text())
    assert list(summary["relevance_by_superclasses"]) == ["coarse", source]
    # The primary grouping's numbers are those of a coarse-only run: the extra one adds, not alters.
    alone = json.loads((out / "sem" / "relevance" / "summary.json").read_text())
    assert summary["relevance"] == alone["relevance"]
    assert summary["relevance_by_superclasses"]["coarse"]["relevance"] == alone["relevance"]
    # The extra grouping is scored on the same saved W_K.
    coef = np.load(rel / "probe.npz")["coef"].astype(np.float64)
    groups = [f"g{i % 7}" for i in range(len(names))]
    expected = relevance(two_neighbours(top_k_graph(coef, 4)), groups)
    scored = summary["relevance_by_superclasses"][source]
    assert scored["relevance"]["total"] == pytest.approx(expected.total)
    assert scored["superclasses"]["n_groups"] == 7
    assert scored["relevance"]["chance"] != summary["relevance"]["chance"]

    table = result.relevance_by_superclasses
    assert list(zip(table["model"], table["superclasses"], strict=True)) == [
        ("sem", "coarse"),
        ("sem", source),
        ("sem-random-init", "coarse"),
        ("sem-random-init", source),
    ]
    by = table.set_index(["model", "superclasses"])["relevance_mean"]
    lift = table.set_index(["model", "superclasses"])["lift_vs_random_init"]
    for name in ("coarse", source):
        assert lift["sem", name] == pytest.approx(by["sem", name] - by["sem-random-init", name])
    assert summary["lift_vs_random_init"] == pytest.approx(lift["sem", "coarse"])
    saved = pd.read_csv(tmp_path / "run" / "relevance_by_superclasses.csv")
    assert len(saved) == 4 and set(saved["superclasses"]) == {"coarse", source}
    curves = pd.read_csv(rel / "curves_by_superclasses.csv")
    coarse_curve = curves[curves["superclasses"] == "coarse"].drop(columns="superclasses")
    pd.testing.assert_frame_equal(
        coarse_curve.reset_index(drop=True), pd.read_csv(rel / "curve.csv"), check_exact=False
    )
    assert list(curves.loc[curves["superclasses"] == source, "k"]) == [1, 2, 3, 4, 5, 6]
    assert [f for f in result.figures if f.startswith("relevance_curve")] == [
        "relevance_curve",
        "relevance_curve_" + re.sub(r"[^A-Za-z0-9]+", "_", source).strip("_"),
    ]


@pytest.mark.parametrize(
    ("superclasses", "message"),
    [
        ("coarse,coarse", "distinct sources"),
        ("coarse,,wordnet", "distinct sources"),
        ("coarse,galaxy", "unknown"),
        ("coarse,wordnet:0", "integer >= 1"),
    ],
)
def test_bad_superclass_lists_fail_when_settings_are_made(superclasses: str, message: str) -> None:
    with pytest.raises(SemprobeError, match=message):
        RelevanceSettings(superclasses=superclasses)


def test_superclass_sources(tmp_path: Path) -> None:
    names = ["a", "b", "c", "d"]
    labels, report = resolve_superclasses("coarse", names, {"a": "x", "b": "x", "c": "y", "d": "y"})
    assert labels == ["x", "x", "y", "y"]
    assert report["n_groups"] == 2
    csv = tmp_path / "groups.csv"
    csv.write_text("class,superclass\na,p\nb,q\nc,p\nd,q\n")
    labels, _ = resolve_superclasses(f"file:{csv}", names, None)
    assert labels == ["p", "q", "p", "q"]
    with pytest.raises(SemprobeError, match="no coarse superclasses"):
        resolve_superclasses("coarse", names, None)
    csv.write_text("class,superclass\na,p\nb,p\nc,p\nd,p\n")
    with pytest.raises(SemprobeError, match="relevance is undefined"):
        resolve_superclasses(f"file:{csv}", names, None)
    with pytest.raises(SemprobeError, match="unknown"):
        resolve_superclasses("galaxy", names, None)


def test_feature_concepts_by_superclass_and_by_wordnet(wordnet_corpus: Path) -> None:
    classes = ["maple_tree", "oak_tree", "apple", "bus"]
    sups = ["trees", "trees", "fruit", "vehicles"]
    # feature 0 -> both trees; feature 1 -> apple and bus; feature 2 -> oak only
    weights = np.array([[3.0, 0, 0], [2.0, 0, 1.0], [0, 1.0, 0], [0, 2.0, 0]])
    graph = top_k_graph(weights, 1)
    table = feature_concepts(graph, classes, sups, vocab=2, use_wordnet=False)
    by_feature = table.set_index("feature")
    assert by_feature.loc[0, "concept"] == "trees"
    assert bool(by_feature.loc[0, "coherent"])
    assert by_feature.loc[1, "concept"] == "mixed"
    assert by_feature.loc[1, "simplex"] == 0 and by_feature.loc[1, "vertex"] == 1

    wn_table = feature_concepts(graph, classes, sups, vocab=2).set_index("feature")
    assert wn_table.loc[0, "concept"] == "tree.n.01"
    assert wn_table.loc[0, "concept_source"] == "wordnet"
    assert wn_table.loc[1, "concept"] == "mixed"
    simplices = simplex_concepts(wn_table.reset_index())
    assert simplices.loc[0, "simplex"] == 0
    assert "v0: tree.n.01" in simplices.loc[0, "labels"]


def test_k_larger_than_features_is_refused(tmp_path: Path) -> None:
    ckpt = save_tiny(tmp_path / "m.pt")
    options = ExtractionOptions(dataset=DATASET, cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(SemprobeError, match="larger than"):
        run_relevance([ckpt], options, RelevanceSettings(k=41, epochs=2), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".run")] == []


def test_summary_records_every_parameter(relevance_run: tuple[Path, Path, Path]) -> None:
    out, _, _ = relevance_run
    summary = json.loads((out / "base" / "relevance" / "summary.json").read_text())
    assert summary["representation"] == "backbone" and summary["tau"] is None
    assert summary["settings"]["k"] == 4 and summary["settings"]["permutations"] == 100
    assert summary["n_features"] == 128


def test_large_inputs_are_standardised_on_disk(
    relevance_run: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the in-memory limit SEM features and their standardised copies stay on disk."""
    from semprobe import features as features_module
    from semprobe.checkpoint import load_model
    from semprobe.extraction import features

    _, sem, _ = relevance_run
    options = ExtractionOptions(dataset=DATASET, cache_dir=tmp_path, progress=False)
    model = load_model(sem).model
    train, test = features(model, options, "train"), features(model, options, "test")
    dense_train, dense_test = probe_inputs(train, test, "sem", 0.5)
    monkeypatch.setattr(features_module, "IN_MEMORY_LIMIT", 1000)
    big_train, big_test = probe_inputs(train, test, "sem", 0.5)
    assert isinstance(big_train, np.memmap)
    assert isinstance(big_test, np.memmap)
    assert big_train.dtype == np.float16
    np.testing.assert_allclose(big_train, dense_train, atol=2e-2, rtol=2e-3)
    np.testing.assert_allclose(big_test, dense_test, atol=2e-2, rtol=2e-3)
    assert (train.directory / "probe_sem_tau0.5_std.npy").exists()
