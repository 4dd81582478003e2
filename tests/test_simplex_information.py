"""Mutual information per simplex: against scikit-learn, on arrays and on a real run directory."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import mutual_info_score, normalized_mutual_info_score

from semprobe.errors import SemprobeError
from semprobe.rundir import Run
from semprobe.sem import sem_softmax
from semprobe.simplex_information import (
    COLUMNS,
    information_table,
    keep_information,
    mutual_information,
    run_assignments,
    run_information,
    simplex_agreement,
    vertex_assignments,
)
from tests.conftest import _mounted_tmpfs


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_dashboard import build_run

    return build_run(tmp_path_factory.getbasetemp())


@pytest.fixture
def run_copy(run_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the dashboard's run: these tests write caches into it."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def planted(n: int = 600, num_simplices: int = 9, vocab: int = 6, classes: int = 12):
    """Logits where simplex 2 follows the class modulo 3, simplex 5 copies simplex 2."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, classes, n)
    z = rng.normal(size=(n, num_simplices * vocab)).astype(np.float32)
    z[np.arange(n), 2 * vocab + y % 3] += 4.0
    z[:, 5 * vocab : 6 * vocab] = z[:, 2 * vocab : 3 * vocab]
    return z, y


def test_assignments_are_the_argmax_of_the_sem_output_at_any_tau() -> None:
    z, _ = planted()
    a = vertex_assignments(z, 9, 6)
    assert a.dtype == np.uint8 and a.shape == (600, 9)
    for tau in (0.05, 1.0, 7.0):
        p = sem_softmax(torch.from_numpy(z).double(), 9, 6, tau).numpy().reshape(600, 9, 6)
        assert np.array_equal(a, p.argmax(-1))
    bad = z.copy()
    bad[3, 4] = np.nan
    with pytest.raises(SemprobeError, match="NaN"):
        vertex_assignments(bad, 9, 6)
    with pytest.raises(SemprobeError, match="L=4"):
        vertex_assignments(z, 4, 6)


def test_table_matches_sklearn_and_its_permutation_baseline() -> None:
    z, y = planted()
    a = vertex_assignments(z, 9, 6)
    supers = [c % 4 for c in range(12)]
    table = information_table(a, 6, y, supers, permutations=7, seed=3)
    assert list(table.columns) == list(COLUMNS)
    super_y = np.array(supers)[y]
    rng = np.random.default_rng(3)
    perms = [rng.permutation(len(y)) for _ in range(7)]
    for s in range(9):
        row = table.iloc[s]
        assert row["mi_class"] == pytest.approx(mutual_info_score(y, a[:, s]), abs=1e-10)
        assert row["mi_superclass"] == pytest.approx(mutual_info_score(super_y, a[:, s]), abs=1e-10)
        base = np.mean([mutual_info_score(y[p], a[:, s]) for p in perms])
        base_super = np.mean([mutual_info_score(super_y[p], a[:, s]) for p in perms])
        assert row["mi_class_baseline"] == pytest.approx(base, abs=1e-10)
        assert row["mi_superclass_baseline"] == pytest.approx(base_super, abs=1e-10)
        assert row["mi_class_excess"] == pytest.approx(row["mi_class"] - base, abs=1e-12)
    # The planted simplices stand out; the others sit at their baseline (the plug-in bias).
    excess = table["mi_class_excess"].to_numpy()
    assert set(np.argsort(-excess)[:2]) == {2, 5} and excess[2] > 0.5
    assert np.abs(np.delete(excess, [2, 5])).max() < 0.05
    no_super = information_table(a, 6, y, None, permutations=2)
    assert no_super["mi_superclass"].isna().all()
    assert np.allclose(no_super["mi_class"], table["mi_class"])
    with pytest.raises(SemprobeError, match="every class"):
        information_table(a, 6, y, [0, 1], permutations=2)
    with pytest.raises(SemprobeError, match="labels"):
        information_table(a, 6, y[:-1], supers)


def test_mutual_information_over_column_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Columns split over several blocks give what one block gives."""
    import semprobe.simplex_information as module

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, (300, 50)).astype(np.uint8)
    labels = rng.integers(0, 5, 300)
    whole = mutual_information(codes, 4, labels)
    monkeypatch.setattr(module, "_BLOCK_ENTRIES", 300 * 7)
    assert np.allclose(mutual_information(codes, 4, labels), whole, atol=1e-12)
    expected = [mutual_info_score(labels, codes[:, j]) for j in range(50)]
    assert np.allclose(whole, expected, atol=1e-10)


def test_agreement_ranks_the_copy_first_and_matches_sklearn() -> None:
    z, _ = planted()
    a = vertex_assignments(z, 9, 6)
    a[:, 7] = 0  # a dead simplex: one vertex for every image
    agreement = simplex_agreement(a, 6, 2)
    assert list(agreement.columns) == ["simplex", "mi", "nmi"]
    assert 2 not in set(agreement["simplex"]) and len(agreement) == 8
    assert agreement.iloc[0]["simplex"] == 5 and agreement.iloc[0]["nmi"] == pytest.approx(1.0)
    for row in agreement.itertuples():
        other = a[:, int(row.simplex)]
        assert row.mi == pytest.approx(mutual_info_score(a[:, 2], other), abs=1e-10)
        assert row.nmi == pytest.approx(normalized_mutual_info_score(a[:, 2], other), abs=1e-10)
    assert np.all(np.diff(agreement["nmi"].to_numpy()) <= 1e-15)
    # Against a dead simplex, both constant: no defined NMI, listed last.
    dead = simplex_agreement(a, 6, 7)
    assert (dead["mi"] == 0).all()
    with pytest.raises(SemprobeError, match="out of range"):
        simplex_agreement(a, 6, 9)


def _run_numbers(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    spec = json.loads((run / "sem" / "model.json").read_text())["spec"]
    z = np.load(run / "sem" / "logits.npy")
    a = z.reshape(len(z), spec["num_simplices"], spec["vocab"]).argmax(-1)
    classes = json.loads((run / "classes.json").read_text())
    supers = [classes["superclass_of"][c] for c in classes["class_names"]]
    y = np.load(run / "labels.npy")
    return a, y, np.array(supers)[y]


def test_run_table_is_written_reused_and_recomputed(run_copy: Path) -> None:
    model = Run(run_copy).model("sem")
    table = run_information(model, permutations=4, seed=0)
    a, y, super_y = _run_numbers(run_copy)
    for s in range(a.shape[1]):
        assert table["mi_class"][s] == pytest.approx(mutual_info_score(y, a[:, s]), abs=1e-10)
        assert table["mi_superclass"][s] == pytest.approx(
            mutual_info_score(super_y, a[:, s]), abs=1e-10
        )
    saved = pd.read_csv(run_copy / "sem" / "simplex_information.csv")
    pd.testing.assert_frame_equal(saved, table, check_dtype=False)
    meta = json.loads((run_copy / "sem" / "simplex_information.json").read_text())
    assert meta["permutations"] == 4 and meta["num_simplices"] == a.shape[1]
    assert np.array_equal(np.load(run_copy / "sem" / "simplex_assignments.npy"), a)
    assert not list((run_copy / "sem").glob(".*tmp*"))

    # The kept table is what a second call returns (a marked value shows it was not recomputed).
    saved.loc[0, "mi_class"] = 123.0
    saved.to_csv(run_copy / "sem" / "simplex_information.csv", index=False)
    assert run_information(model, permutations=4, seed=0)["mi_class"][0] == 123.0
    # Other settings recompute it, and replace the kept one.
    again = run_information(model, permutations=5, seed=0)
    assert again["mi_class"][0] == pytest.approx(mutual_info_score(y, a[:, 0]), abs=1e-10)
    assert (
        json.loads((run_copy / "sem" / "simplex_information.json").read_text())["permutations"] == 5
    )


def test_a_baseline_model_has_no_simplices(run_copy: Path) -> None:
    with pytest.raises(SemprobeError, match="no SEM layer"):
        run_information(Run(run_copy).model("baseline"))


def test_a_read_only_run_gets_the_table_without_keeping_it(run_dir: Path, tmp_path: Path) -> None:
    mounts = _mounted_tmpfs(tmp_path / "mnt", "size=16m")
    mount = next(mounts)
    try:
        run = Path(shutil.copytree(run_dir, mount / "run"))
        # A run written before the relevance procedure kept the table (or by another tool).
        for kept in (run / "sem").glob("simplex_*"):
            kept.unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        model = Run(run).model("sem")
        table = run_information(model, permutations=3)
        a, y, _ = _run_numbers(run)
        assert table["mi_class"][1] == pytest.approx(mutual_info_score(y, a[:, 1]), abs=1e-10)
        assert np.array_equal(run_assignments(model), a)
        assert not (run / "sem" / "simplex_information.csv").exists()
        assert not (run / "sem" / "simplex_assignments.npy").exists()
    finally:
        next(mounts, None)


def test_a_table_kept_while_a_run_is_built_is_reused(run_copy: Path) -> None:
    """What the relevance procedure can write into a model folder is what the readers reuse."""
    classes = json.loads((run_copy / "classes.json").read_text())
    spec = json.loads((run_copy / "sem" / "model.json").read_text())["spec"]
    folder = run_copy / "sem"
    kept = keep_information(
        folder,
        np.load(folder / "logits.npy"),
        spec["num_simplices"],
        spec["vocab"],
        np.load(run_copy / "labels.npy"),
        classes["class_names"],
        classes["superclass_of"],
        permutations=4,
    )
    a, y, _ = _run_numbers(run_copy)
    assert kept["mi_class"][2] == pytest.approx(mutual_info_score(y, a[:, 2]), abs=1e-10)
    assert np.array_equal(np.load(folder / "simplex_assignments.npy"), a)
    marked = pd.read_csv(folder / "simplex_information.csv")
    marked.loc[3, "mi_superclass"] = -7.0
    marked.to_csv(folder / "simplex_information.csv", index=False)
    assert run_information(Run(run_copy).model("sem"), permutations=4)["mi_superclass"][3] == -7.0
