"""The sparse L1 probe: accuracy against scikit-learn, sparsity, streaming, determinism, API."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from semprobe.errors import SemprobeError
from semprobe.memmap import mapped_rows
from semprobe.probe import (
    DEFAULT_L1_GRID,
    ProbeError,
    SparseLogisticProbe,
    sklearn_C,
    top_k_accuracy,
)
from semprobe.probe.stream import RowStream, file_layout
from semprobe.sem import sem_softmax

L_SIMPLICES, VOCAB, N_CLASSES = 20, 10, 10


def sem_data(n: int, seed: int = 0, n_classes: int = N_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """SEM-like features: class-dependent Gaussian logits through the SEM softmax."""
    rng = np.random.default_rng(seed)
    # Fixed class means (seed 123) so that every call draws from the same distribution.
    means = np.random.default_rng(123).normal(0.0, 1.2, (n_classes, L_SIMPLICES * VOCAB))
    y = rng.integers(0, n_classes, size=n)
    logits = means[y] + rng.normal(0.0, 1.5, (n, L_SIMPLICES * VOCAB))
    X = sem_softmax(torch.from_numpy(logits.astype(np.float32)), L_SIMPLICES, VOCAB, tau=1.0)
    return X.numpy(), y


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = sem_data(2000)
    return X[:1500], y[:1500], X[1500:], y[1500:]


def objective(coef: np.ndarray, intercept: np.ndarray, X: np.ndarray, y: np.ndarray, l1: float):
    z = X.astype(np.float64) @ coef.T.astype(np.float64) + intercept
    z -= z.max(axis=1, keepdims=True)
    ce = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y])
    return ce + l1 * np.abs(coef).sum()


def sklearn_l1(C: float) -> LogisticRegression:
    import inspect

    if inspect.signature(LogisticRegression).parameters["penalty"].default == "deprecated":
        return LogisticRegression(C=C, l1_ratio=1.0, solver="saga", max_iter=1000, tol=1e-4)
    return LogisticRegression(C=C, penalty="l1", solver="saga", max_iter=1000, tol=1e-4)


def test_matches_sklearn_saga_accuracy_and_objective(data) -> None:
    X, y, X_test, y_test = data
    l1 = 1e-3
    probe = SparseLogisticProbe(l1=l1).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = sklearn_l1(sklearn_C(l1, len(y))).fit(X, y)
    ours_acc, ref_acc = probe.score(X_test, y_test), ref.score(X_test, y_test)
    assert ref_acc > 0.6  # the problem is learnable but not trivial
    assert ours_acc >= ref_acc - 0.01
    # Same objective, same minimum: ours is within 0.1 % of saga's run to tol=1e-6.
    ours_obj = objective(probe.coef_, probe.intercept_, X, y, l1)
    ref_obj = objective(ref.coef_, ref.intercept_, X, y, l1)
    assert ours_obj <= ref_obj * 1.001
    assert probe.converged_
    assert probe.objective_ == pytest.approx(ours_obj, rel=1e-5)


def test_exact_zeros_grow_with_l1(data) -> None:
    X, y, _, _ = data
    zeros = []
    for l1 in (1e-4, 1e-3, 1e-2):
        probe = SparseLogisticProbe(l1=l1).fit(X, y)
        assert probe.coef_.dtype == np.float32
        assert probe.coef_.shape == (N_CLASSES, X.shape[1])
        zeros.append(int(np.sum(probe.coef_ == 0.0)))
    assert zeros[0] > 0
    assert zeros[0] < zeros[1] < zeros[2]
    assert zeros[2] < probe.coef_.size  # not everything removed


def test_l1_zero_is_dense(data) -> None:
    X, y, X_test, y_test = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe = SparseLogisticProbe(l1=0.0, l2=1e-3, max_epochs=40).fit(X, y)
    assert np.count_nonzero(probe.coef_) == probe.coef_.size
    assert probe.score(X_test, y_test) > 0.6


def test_memmap_gives_identical_coefficients(data, tmp_path: Path) -> None:
    X, y, _, _ = data
    for dtype in (np.float32, np.float16):
        in_memory = X.astype(dtype)
        mm = np.memmap(tmp_path / f"X_{np.dtype(dtype).name}.dat", dtype, "w+", shape=X.shape)
        mm[:] = in_memory
        mm.flush()
        readonly = np.memmap(mm.filename, dtype, "r", shape=X.shape)
        a = SparseLogisticProbe(l1=1e-3, batch_size=256).fit(in_memory, y)
        b = SparseLogisticProbe(l1=1e-3, batch_size=256).fit(readonly, y)
        assert a.coef_.tobytes() == b.coef_.tobytes()
        assert a.intercept_.tobytes() == b.intercept_.tobytes()
        np.testing.assert_array_equal(a.predict_proba(readonly), a.predict_proba(in_memory))


def test_npy_memmap_slices_and_auto_subsets_match_in_memory(data, tmp_path: Path) -> None:
    X, y, _, _ = data
    np.save(tmp_path / "X.npy", X)
    loaded = np.load(tmp_path / "X.npy", mmap_mode="r")  # data starts after the .npy header
    a = SparseLogisticProbe(l1=1e-3, batch_size=300).fit(X[37:], y[37:])
    b = SparseLogisticProbe(l1=1e-3, batch_size=300).fit(loaded[37:], y[37:])
    assert a.coef_.tobytes() == b.coef_.tobytes()
    # l1="auto" reads a random subset of the rows for training and the rest for validation.
    grid = (1e-2, 1e-3)
    c = SparseLogisticProbe(l1="auto", l1_grid=grid, batch_size=256).fit(X, y)
    d = SparseLogisticProbe(l1="auto", l1_grid=grid, batch_size=256).fit(loaded, y)
    assert c.validation_scores_ == d.validation_scores_
    assert c.coef_.tobytes() == d.coef_.tobytes()


def test_two_fits_are_byte_identical(data) -> None:
    X, y, _, _ = data
    a = SparseLogisticProbe(l1=3e-4).fit(X, y)
    b = SparseLogisticProbe(l1=3e-4).fit(X, y)
    assert a.coef_.tobytes() == b.coef_.tobytes()
    assert a.intercept_.tobytes() == b.intercept_.tobytes()
    assert a.n_iter_ == b.n_iter_


def test_batch_size_only_changes_rounding(data) -> None:
    X, y, X_test, _ = data
    a = SparseLogisticProbe(l1=1e-3, batch_size=97).fit(X, y)
    b = SparseLogisticProbe(l1=1e-3, batch_size=4096).fit(X, y)
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-3)
    agree = np.mean(a.predict(X_test) == b.predict(X_test))
    assert agree > 0.97


def test_sklearn_clone_and_cross_val_score(data) -> None:
    X, y, _, _ = data
    probe = SparseLogisticProbe(l1=1e-3, max_epochs=60)
    twin = clone(probe)
    assert twin.get_params() == probe.get_params()
    assert not hasattr(twin, "coef_")
    scores = cross_val_score(probe, X, y, cv=2)
    assert scores.shape == (2,)
    assert np.all((scores > 0.6) & (scores <= 1.0))


def test_probabilities_and_predictions_agree(data) -> None:
    X, y, X_test, y_test = data
    probe = SparseLogisticProbe(l1=1e-3).fit(X, y)
    proba = probe.predict_proba(X_test)
    assert proba.shape == (len(X_test), N_CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(np.exp(probe.predict_log_proba(X_test)), proba, rtol=1e-9)
    scores = probe.decision_function(X_test)
    np.testing.assert_allclose(
        scores, X_test @ probe.coef_.T + probe.intercept_, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_array_equal(probe.predict(X_test), probe.classes_[proba.argmax(axis=1)])
    assert probe.score(X_test, y_test) == pytest.approx(np.mean(probe.predict(X_test) == y_test))
    assert probe.n_features_in_ == X.shape[1]
    assert 1 <= probe.n_iter_ <= probe.max_epochs


def test_string_labels_give_the_same_model(data) -> None:
    X, y, X_test, y_test = data
    names = np.array([f"class_{c:02d}" for c in range(N_CLASSES)])
    numeric = SparseLogisticProbe(l1=1e-3).fit(X, y)
    named = SparseLogisticProbe(l1=1e-3).fit(X, names[y])
    assert list(named.classes_) == list(names)
    assert named.coef_.tobytes() == numeric.coef_.tobytes()
    assert named.score(X_test, names[y_test]) == numeric.score(X_test, y_test)
    assert named.predict(X_test[:3]).dtype.kind == "U"


def test_unsorted_integer_labels_map_to_sorted_classes(data) -> None:
    X, y, _, _ = data
    labels = np.array([7, -3, 40, 5, 11, 2, 99, 0, 13, 8])[y]
    probe = SparseLogisticProbe(l1=1e-3, max_epochs=30).fit(X, labels)
    np.testing.assert_array_equal(probe.classes_, np.unique(labels))
    assert set(probe.predict(X[:50])) <= set(labels)


def test_two_classes(data) -> None:
    X, y, _, _ = data
    keep = y < 2
    probe = SparseLogisticProbe(l1=1e-3).fit(X[keep], y[keep])
    assert probe.coef_.shape == (2, X.shape[1])
    margin = probe.decision_function(X[keep])
    assert margin.shape == (int(keep.sum()),)
    np.testing.assert_array_equal(probe.predict(X[keep]), (margin > 0).astype(int))
    assert probe.score(X[keep], y[keep]) > 0.9


def test_auto_l1_picks_from_grid(data) -> None:
    X, y, X_test, y_test = data
    grid = (1e-2, 1e-3, 1e-4)
    probe = SparseLogisticProbe(l1="auto", l1_grid=grid, random_state=3).fit(X, y)
    assert probe.l1_ in grid
    assert sorted(probe.validation_scores_) == sorted(grid)
    assert all(0.0 <= s <= 1.0 for s in probe.validation_scores_.values())
    best = max(probe.validation_scores_.values())
    assert probe.validation_scores_[probe.l1_] == best
    assert best > 0.6
    assert probe.score(X_test, y_test) > 0.6
    # Same seed, same choice and model; the grid is sorted for the record.
    again = SparseLogisticProbe(l1="auto", l1_grid=grid, random_state=3).fit(X, y)
    assert again.validation_scores_ == probe.validation_scores_
    assert again.coef_.tobytes() == probe.coef_.tobytes()


def test_auto_default_grid_is_log_spaced() -> None:
    ratios = np.diff(np.log10(DEFAULT_L1_GRID))
    assert np.all((ratios > 0.45) & (ratios < 0.55))  # half decades
    assert DEFAULT_L1_GRID[0] < 1e-4 < DEFAULT_L1_GRID[-1]


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"l1": -0.1}, "-0.1"),
        ({"l1": "foo"}, "'foo'"),
        ({"l1": float("nan")}, "nan"),
        ({"batch_size": 0}, "0"),
        ({"batch_size": 2.5}, "2.5"),
        ({"l2": -1.0}, "-1.0"),
        ({"max_epochs": 0}, "0"),
        ({"tol": -1e-3}, "-0.001"),
        ({"history": 0}, "0"),
        ({"device": "nonsense"}, "'nonsense'"),
        ({"validation_fraction": 1.0}, "1.0"),
        ({"l1_grid": [1e-3, -1.0]}, "-1.0"),
        ({"n_threads": 0}, "0"),
    ],
)
def test_bad_parameters_name_the_value(data, params: dict, shown: str) -> None:
    X, y, _, _ = data
    name = next(iter(params))
    with pytest.raises(ProbeError, match=re.escape(shown)) as info:
        SparseLogisticProbe(**params).fit(X[:50], y[:50])
    assert name.split("_")[0] in str(info.value)
    assert isinstance(info.value, SemprobeError)
    assert isinstance(info.value, ValueError)


def test_bad_inputs_raise(data) -> None:
    X, y, _, _ = data
    with pytest.raises(ProbeError, match="100 rows but y has 99"):
        SparseLogisticProbe().fit(X[:100], y[:99])
    with pytest.raises(ProbeError, match="at least 2 classes"):
        SparseLogisticProbe().fit(X[:10], np.zeros(10, dtype=int))
    with pytest.raises(ProbeError, match="2-D"):
        SparseLogisticProbe().fit(X[0], y[:1])
    bad = X[:100].copy()
    bad[42, 7] = np.nan
    with pytest.raises(ProbeError, match="NaN"):
        SparseLogisticProbe().fit(bad, y[:100])
    probe = SparseLogisticProbe(l1=1e-3, max_epochs=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(X[:200], y[:200])
    with pytest.raises(ProbeError, match=f"{X.shape[1] - 1} features"):
        probe.predict(X[:5, :-1])


def test_not_converging_warns(data) -> None:
    X, y, _, _ = data
    with pytest.warns(ConvergenceWarning, match="max_epochs=3"):
        probe = SparseLogisticProbe(l1=1e-4, max_epochs=3).fit(X, y)
    assert not probe.converged_
    assert probe.n_iter_ == 3


def test_sparse_input_matches_dense(data) -> None:
    import scipy.sparse as sp

    X, y, _, _ = data
    dense = SparseLogisticProbe(l1=1e-3).fit(X, y)
    sparse = SparseLogisticProbe(l1=1e-3).fit(sp.csr_matrix(X), y)
    np.testing.assert_array_equal(sparse.coef_, dense.coef_)


def test_top_k_accuracy() -> None:
    scores = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.3, 0.3, 0.4]])
    y = np.array([2, 0, 0, 1])
    assert top_k_accuracy(y, scores, k=1) == pytest.approx(1 / 4)
    assert top_k_accuracy(y, scores, k=2) == pytest.approx(3 / 4)  # row 3 tie counts as a hit
    assert top_k_accuracy(y, scores, k=3) == 1.0
    labels = np.array(["c", "a", "a", "b"])
    assert top_k_accuracy(labels, scores, k=2, classes=["a", "b", "c"]) == pytest.approx(3 / 4)
    assert top_k_accuracy(np.array(["z"] * 4), scores, k=3, classes=["a", "b", "c"]) == 0.0
    with pytest.raises(ProbeError, match="0"):
        top_k_accuracy(y, scores, k=0)


def test_score_top_k_on_probe(data) -> None:
    X, y, X_test, y_test = data
    probe = SparseLogisticProbe(l1=1e-3).fit(X, y)
    top1, top3 = probe.score_top_k(X_test, y_test, k=1), probe.score_top_k(X_test, y_test, k=3)
    assert top1 == pytest.approx(probe.score(X_test, y_test))
    assert top1 < top3 <= 1.0


def test_sklearn_C_relation() -> None:
    assert sklearn_C(1e-4, 5000) == pytest.approx(2.0)
    with pytest.raises(ProbeError):
        sklearn_C(0.0, 10)


def test_no_intercept(data) -> None:
    X, y, X_test, y_test = data
    probe = SparseLogisticProbe(l1=1e-3, fit_intercept=False).fit(X, y)
    assert np.all(probe.intercept_ == 0)
    assert probe.score(X_test, y_test) > 0.6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(data) -> None:
    X, y, X_test, y_test = data
    cpu = SparseLogisticProbe(l1=1e-3).fit(X, y)
    gpu = SparseLogisticProbe(l1=1e-3, device="cuda").fit(X.astype(np.float16), y)
    assert gpu.objective_ == pytest.approx(cpu.objective_, rel=5e-3)
    assert abs(gpu.score(X_test, y_test) - cpu.score(X_test, y_test)) <= 0.02


def test_sklearn_estimator_checks() -> None:
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(SparseLogisticProbe(max_epochs=50))


def _rss_file_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("RssFile:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def test_memmap_rows_do_not_stay_resident(tmp_path: Path) -> None:
    if _rss_file_mb() is None:
        pytest.skip("needs /proc/self/status")
    rng = np.random.default_rng(0)
    n, d = 16_000, 1_000  # 64 MB of float32
    path = tmp_path / "big.dat"
    mm = np.memmap(path, np.float32, "w+", shape=(n, d))
    for start in range(0, n, 2000):
        mm[start : start + 2000] = rng.random((2000, d), dtype=np.float32)
    mm.flush()
    del mm
    X = np.memmap(path, np.float32, "r", shape=(n, d))
    y = rng.integers(0, 3, n)
    before = _rss_file_mb()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe = SparseLogisticProbe(l1=1e-3, max_epochs=2, batch_size=1000).fit(X, y)
    probe.predict(X)
    grown = _rss_file_mb() - before  # type: ignore[operator]
    assert grown < 24.0, f"{grown:.0f} MB of the 64 MB memmap stayed resident"


def test_n_threads_is_applied_and_restored(data, monkeypatch: pytest.MonkeyPatch) -> None:
    X, y, _, _ = data
    before = torch.get_num_threads()
    seen: list[int] = []
    original = SparseLogisticProbe._solve

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SparseLogisticProbe, "_solve", spy)
    probe = SparseLogisticProbe(l1=1e-3, n_threads=1).fit(X, y)
    assert seen == [1]
    assert torch.get_num_threads() == before
    monkeypatch.undo()
    reference = SparseLogisticProbe(l1=1e-3).fit(X, y)
    np.testing.assert_allclose(probe.coef_, reference.coef_, atol=1e-5)


def test_file_layout_is_the_mapped_rows_of_a_2d_memmap(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    X = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    rows = mapped_rows(mm)
    assert rows is not None
    assert file_layout(mm) == (rows.filename, rows.file_offset) == (str(path), 128)
    assert file_layout(mm[2:]) == (str(path), 128 + 2 * 16)
    # A view without a simple layout, a copy-on-write map, 1-D rows and memory: no file.
    assert file_layout(mm[:, ::2]) is None
    assert file_layout(np.load(path, mmap_mode="c")) is None
    assert file_layout(mm.reshape(-1)) is None
    assert file_layout(X) is None
    # A sorted subset read from the file is the same as indexing the array.
    picked = np.array([0, 3, 4, 9])
    stream = RowStream(mm, picked, 3, torch.device("cpu"))
    got = np.concatenate([block.numpy().copy() for _, _, block in stream])
    np.testing.assert_array_equal(got, X[picked])
