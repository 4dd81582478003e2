"""The streamed weighted kNN against a brute-force numpy reference, ties included, and lightly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions, features
from semprobe.protocols.knn import (
    KNNSettings,
    knn_accuracy,
    knn_pairs,
    knn_table,
    nearest_neighbours,
)
from semprobe.protocols.rows import FeatureRows
from tests.conftest import save_tiny


def reference_knn(train, train_y, test, test_y, n_classes, k, temperature, metric):
    """The whole similarity matrix in float64, neighbours by (-similarity, index), a vote loop."""
    tr, te = train.astype(np.float64), test.astype(np.float64)
    if metric == "cosine":
        tr = tr / np.maximum(np.linalg.norm(tr, axis=1, keepdims=True), 1e-12)
        te = te / np.maximum(np.linalg.norm(te, axis=1, keepdims=True), 1e-12)
        sims = te @ tr.T
    else:
        sims = -((te[:, None, :] - tr[None, :, :]) ** 2).sum(-1)
    neighbours, top1, top5 = [], [], []
    for i in range(len(te)):
        order = np.lexsort((np.arange(len(tr)), -sims[i]))[:k]
        neighbours.append(order)
        votes = np.zeros(n_classes)
        for j in order:
            s = sims[i, j]
            w = math.exp(s / temperature) if metric == "cosine" else 1 / (math.sqrt(-s) + 1e-5)
            votes[train_y[j]] += w
        ranked = sorted(range(n_classes), key=lambda c: (-votes[c], c))
        top1.append(ranked[0] == test_y[i])
        top5.append(test_y[i] in ranked[: min(5, n_classes)])
    return np.array(neighbours), float(np.mean(top1)), float(np.mean(top5))


def tied_features(rng: np.random.Generator, n: int, d: int = 6) -> np.ndarray:
    """Rows in {-1, 0, 1} with four non-zeros: unit rows are +-0.5 and every product is exact,
    so equal similarities are equal bit for bit and ties are real."""
    out = np.zeros((n, d), dtype=np.float32)
    for row in out:
        cols = rng.choice(d, size=4, replace=False)
        row[cols] = rng.choice([-1.0, 1.0], size=4)
    return out


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize(("k", "temperature"), [(20, 0.07), (200, 0.1), (1, 0.5), (7, 1.0)])
def test_matches_brute_force_with_ties(metric: str, k: int, temperature: float) -> None:
    rng = np.random.default_rng(k)
    train, test = tied_features(rng, 240), tied_features(rng, 37)
    train_y, test_y = rng.integers(0, 4, 240), rng.integers(0, 4, 37)
    sims = test @ train.T
    # The data really have ties at the k-th neighbour.
    kth = -np.sort(-sims, axis=1)[:, k - 1 : k]
    assert ((sims == kth).sum(1) > 1).mean() > 0.5
    ref_idx, ref1, ref5 = reference_knn(train, train_y, test, test_y, 4, k, temperature, metric)
    # Small blocks: the running top-k is merged across 35 training blocks and 8 query blocks.
    found = nearest_neighbours(train, test, k, metric, query_rows=5, train_rows=7)
    np.testing.assert_array_equal(found.indices, ref_idx)
    scored = knn_accuracy(found, train_y, test_y, 4, k, temperature)
    assert scored == {"top1": ref1, "top5": ref5}
    # The same with one block each: the blocking changes nothing.
    whole = nearest_neighbours(train, test, k, metric)
    np.testing.assert_array_equal(whole.indices, found.indices)
    np.testing.assert_array_equal(whole.scores, found.scores)


def test_matches_brute_force_on_continuous_data_and_a_memmap(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(500, 24)).astype(np.float32)
    test = rng.normal(size=(60, 24)).astype(np.float32)
    train_y, test_y = rng.integers(0, 10, 500), rng.integers(0, 10, 60)
    np.save(tmp_path / "train.npy", train.astype(np.float16))
    mapped = np.load(tmp_path / "train.npy", mmap_mode="r")
    ref_idx, ref1, ref5 = reference_knn(
        mapped.astype(np.float32), train_y, test, test_y, 10, 20, 0.07, "cosine"
    )
    found = nearest_neighbours(mapped, test, 20, "cosine", query_rows=16, train_rows=64)
    np.testing.assert_array_equal(found.indices, ref_idx)
    assert knn_accuracy(found, train_y, test_y, 10, 20, 0.07) == {"top1": ref1, "top5": ref5}


def test_agrees_with_lightly_knn_predict() -> None:
    from lightly.utils.benchmarking.knn import knn_predict

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(5, 16))
    train_y, test_y = rng.integers(0, 5, 400), rng.integers(0, 5, 80)
    train = (centres[train_y] + rng.normal(scale=1.5, size=(400, 16))).astype(np.float32)
    test = (centres[test_y] + rng.normal(scale=1.5, size=(80, 16))).astype(np.float32)
    bank = torch.nn.functional.normalize(torch.from_numpy(train), dim=1)
    query = torch.nn.functional.normalize(torch.from_numpy(test), dim=1)
    theirs = knn_predict(query, bank.T, torch.from_numpy(train_y), 5, knn_k=200, knn_t=0.1)
    found = nearest_neighbours(train, test, 200, train_rows=64)
    ours = knn_accuracy(found, train_y, test_y, 5, 200, 0.1)
    assert ours["top1"] == float((theirs[:, 0].numpy() == test_y).mean())
    assert 0.3 < ours["top1"] < 1.0  # neither chance nor trivial


def test_bad_inputs() -> None:
    x = np.ones((3, 2), np.float32)
    with pytest.raises(SemprobeError, match="k = 4 is larger than the 3 training rows"):
        nearest_neighbours(x, x, 4)
    with pytest.raises(SemprobeError, match="unknown kNN metric"):
        nearest_neighbours(x, x, 1, metric="manhattan")
    with pytest.raises(SemprobeError, match="2 features but test rows have 3"):
        nearest_neighbours(x, np.ones((1, 3)), 1)
    bad = x.copy()
    bad[1, 0] = np.nan
    with pytest.raises(SemprobeError, match="NaN"):
        nearest_neighbours(bad, x, 1)
    with pytest.raises(SemprobeError, match="temperature must be a finite number > 0"):
        knn_pairs(temperatures=[0.0])
    assert knn_pairs(ks=[20], temperatures=[0.07]) == [(20, 0.07, "solo-learn")]


def test_knn_table_of_cached_features(tmp_path: Path) -> None:
    ckpt = save_tiny(tmp_path / "sem.pt", seed=2)
    from semprobe.checkpoint import load_model

    model = load_model(ckpt).model
    options = ExtractionOptions(
        dataset="synthetic:train=4,test=2", cache_dir=tmp_path / "cache", progress=False
    )
    train, test = features(model, options, "train"), features(model, options, "test")
    # float64: SEM outputs at tau = 1 of a random model are nearly uniform, with cosine
    # similarities within 1e-9 of each other, which float32 cannot order.
    settings = KNNSettings(taus=(0.1, 1.0), dtype="float64")
    table = knn_table(train, test, settings, "sem")
    assert list(table["representation"]) == ["backbone"] * 2 + ["logits"] * 2 + ["sem"] * 4
    assert list(table["convention"]) == ["solo-learn", "lightly"] * 4
    assert list(table["k"]) == [20, 200] * 4
    # Each row is the reference's number on the same representation.
    for row in table.itertuples():
        tau = None if math.isnan(row.tau) else row.tau
        with FeatureRows(train, row.representation, tau) as tr:
            x_train = tr.read(0, tr.shape[0])
        with FeatureRows(test, row.representation, tau) as te:
            x_test = te.read(0, te.shape[0])
        n_classes = len(train.class_names)
        _, top1, top5 = reference_knn(
            x_train, train.labels, x_test, test.labels, n_classes, row.k, row.temperature, "cosine"
        )
        assert (row.top1, row.top5) == (top1, top5)
    assert table["n_features"].tolist()[:3] == [128, 128, 40]
