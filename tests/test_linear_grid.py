"""The linear protocol's train-tau x eval-tau grid on real tiny models and cached features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from semprobe.analysis import probe_inputs
from semprobe.checkpoint import load_model
from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions, features
from semprobe.protocols.linear_grid import LinearGridSettings, heatmap_table, linear_grid
from semprobe.protocols.rows import FeatureRows, column_stats, label_columns
from semprobe.protocols.strengths import Strength, holdout
from semprobe.sem import sem_softmax
from semprobe.studies import ProbeSettings, tau_sweep
from tests.conftest import save_tiny

DATASET = "synthetic:train=4,test=2"
TAUS = (0.01, 0.1, 1.0)


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("grid")
    model = load_model(save_tiny(root / "sem.pt", seed=5)).model
    options = ExtractionOptions(dataset=DATASET, cache_dir=root / "cache", progress=False)
    return features(model, options, "train"), features(model, options, "test")


def test_the_diagonal_is_the_tau_sweep(cached) -> None:
    train, test = cached
    probe = ProbeSettings(l1=0.0, l2=1e-4, epochs=8, seed=0)
    sweep = tau_sweep(train, test, TAUS, probe, "sem")
    settings = LinearGridSettings(
        train_taus=TAUS, eval_taus=TAUS, strengths=(Strength(l2=1e-4),), epochs=8
    )
    result = linear_grid(train, test, settings, "sem")
    table = result.table
    assert len(table) == 2 + len(TAUS) ** 2  # two baselines and the 3 x 3 grid
    for row in sweep.itertuples():
        if row.representation == "sem":
            cell = table[(table["tau_train"] == row.tau) & (table["tau_eval"] == row.tau)]
        else:
            cell = table[table["representation"] == row.representation]
        assert len(cell) == 1
        assert cell["top1"].iloc[0] == row.top1
        assert cell["top5"].iloc[0] == row.top5
    # One strength: nothing is held out, every fit uses all training rows.
    assert set(result.grid["fit"]) == {"all"}
    assert table["val_top1"].isna().all()
    wide = heatmap_table(table, "sem")
    assert list(wide.index) == ["0.01", "0.1", "1"] and list(wide.columns) == ["0.01", "0.1", "1"]


def test_an_off_diagonal_cell_is_the_probe_applied_at_the_other_tau(cached) -> None:
    """Recompute one cell by hand: fit at tau_train, standardise softmax(z / tau_eval) with the
    tau_train statistics, score, compare."""
    train, test = cached
    settings = LinearGridSettings(
        train_taus=(0.1,), eval_taus=(0.1, 1.0), strengths=(Strength(l2=1e-4),), epochs=6
    )
    result = linear_grid(train, test, settings, "sem")
    cell = result.table[(result.table["tau_train"] == 0.1) & (result.table["tau_eval"] == 1.0)]
    from semprobe.protocols.strengths import fit

    x_train, x_test = probe_inputs(train, test, "sem", 0.1)
    probe, _ = fit(x_train, train.labels, x_test, test.labels, Strength(l2=1e-4), 6, 0, "cpu")
    raw_train = np.array(train.logits, np.float32)
    sem_train = sem_softmax(torch.from_numpy(raw_train), train.num_simplices, train.vocab, 0.1)
    mean = sem_train.numpy().mean(0)
    std = sem_train.numpy().std(0) + 1e-6
    sem_test = sem_softmax(
        torch.from_numpy(np.array(test.logits, np.float32)), test.num_simplices, test.vocab, 1.0
    ).numpy()
    scores = ((sem_test - mean) / std) @ probe.coef_.T + probe.intercept_
    expected = np.mean(probe.classes_[scores.argmax(1)] == test.labels)
    assert cell["top1"].iloc[0] == pytest.approx(expected, abs=1 / len(test.labels))
    stats_mean, stats_std = column_stats(FeatureRows(train, "sem", 0.1))
    np.testing.assert_allclose(stats_mean, mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats_std, std, rtol=1e-4, atol=1e-6)


def test_a_validation_split_chooses_the_strength(cached) -> None:
    train, test = cached
    strengths = (Strength(l2=1e-4), Strength(l2=10.0), Strength(l1=1e-5))
    settings = LinearGridSettings(
        train_taus=(0.1, 1.0), eval_taus=(0.1, 1.0), strengths=strengths, epochs=6
    )
    result = linear_grid(train, test, settings, "sem")
    grid, table = result.grid, result.table
    val = grid[(grid["split"] == "val")]
    # Every strength is fitted without the validation rows and scored on them at every tau_eval.
    sem_val = val[val["representation"] == "sem"]
    assert len(sem_val) == 2 * 3 * 2
    for row in table[table["representation"] == "sem"].itertuples():
        cell = sem_val[
            (sem_val["tau_train"] == row.tau_train) & (sem_val["tau_eval"] == row.tau_eval)
        ]
        best = cell["top1"].max()
        first_best = cell[cell["top1"] == best]["strength"].iloc[0]
        assert row.strength == first_best and row.val_top1 == best
        refit = grid[
            (grid["fit"] == "all")
            & (grid["strength"] == row.strength)
            & (grid["tau_train"] == row.tau_train)
            & (grid["tau_eval"] == row.tau_eval)
        ]
        assert row.top1 == refit["top1"].iloc[0]
    # l2 = 10 crushes the weights: it never wins here.
    assert "l2=10" not in set(table["strength"])


def test_the_validation_split_is_stratified_and_seeded() -> None:
    labels = np.repeat(np.arange(5), 20)
    train_rows, val_rows = holdout(labels, 0.1, seed=3)
    assert np.bincount(labels[val_rows]).tolist() == [2] * 5
    assert len(np.intersect1d(train_rows, val_rows)) == 0
    assert len(train_rows) + len(val_rows) == 100
    again = holdout(labels, 0.1, seed=3)
    np.testing.assert_array_equal(again[1], val_rows)
    assert not np.array_equal(holdout(labels, 0.1, seed=4)[1], val_rows)
    # Too few rows per class to stratify (40 rows over 100 classes): a seeded permutation.
    many = np.repeat(np.arange(100), 4)
    assert len(holdout(many, 0.1, 0)[1]) == 40


def test_baseline_model_and_bad_settings(tmp_path: Path) -> None:
    model = load_model(save_tiny(tmp_path / "b.pt", num_simplices=0, vocab=0)).model
    options = ExtractionOptions(dataset=DATASET, cache_dir=tmp_path / "c", progress=False)
    train, test = features(model, options, "train"), features(model, options, "test")
    settings = LinearGridSettings(strengths=(Strength(l2=1e-4),), epochs=3)
    table = linear_grid(train, test, settings, "base").table
    assert list(table["representation"]) == ["backbone"]
    with pytest.raises(SemprobeError, match=r"validation fraction must be in \(0, 1\)"):
        LinearGridSettings(validation_fraction=1.0)
    with pytest.raises(SemprobeError, match="given twice"):
        LinearGridSettings(strengths=(Strength(l1=1e-5), Strength(l1=1e-5)))
    with pytest.raises(SemprobeError, match="tau must be a positive"):
        LinearGridSettings(train_taus=(0.0,))


def test_label_columns() -> None:
    class Fitted:
        classes_ = np.array([0, 2, 5])

    assert label_columns(Fitted(), np.array([5, 0, 3, 2])).tolist() == [2, 0, -1, 1]  # type: ignore[arg-type]
    assert isinstance(pd.DataFrame(), pd.DataFrame)
