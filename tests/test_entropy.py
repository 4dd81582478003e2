"""Streamed entropy analysis against hand-made simplices and dense float64 / numpy references.

Property-based tests (hypothesis) draw logits, taus and labels and check every statistic of every
table against numpy on the same entropies: means, deviations and extremes to float rounding,
quantiles within the stated bin bound, and the consistency of each table with itself.
"""

from __future__ import annotations

import doctest
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semprobe.entropy import EntropyReport, RowPager, entropy_kernel, entropy_report
from semprobe.entropy import bins as entropy_bins
from semprobe.entropy import quantiles as entropy_quantiles
from semprobe.entropy.bins import BinLayout
from semprobe.errors import SemprobeError
from semprobe.sem import simplex_entropy

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def dense_entropy(logits: np.ndarray, L: int, V: int, tau: float) -> np.ndarray:
    """``(N, L)`` entropies in float64, straight from the definition."""
    z = logits.astype(np.float64).reshape(-1, L, V) / tau
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -(np.exp(log_p) * log_p).sum(axis=-1)


def rows_of(frame: pd.DataFrame, tau: float) -> pd.DataFrame:
    return frame[frame["tau"] == tau].reset_index(drop=True)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, size=(157, 6 * 7)).astype(np.float32)
    labels = rng.integers(0, 5, size=157)
    return logits, labels


# -- the kernel --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_kernel_matches_simplex_entropy(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    logits = (torch.randn(9, 5 * 13) * 4).to(dtype)
    taus = [1e-3, 0.05, 1.0, 20.0, 1e3]
    got = entropy_kernel(logits, 5, 13, taus)
    want = torch.stack([simplex_entropy(logits, 5, 13, t) for t in taus])
    assert got.shape == (5, 9, 5)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-5)


# -- hand-made simplices -----------------------------------------------------------------------


def test_hand_made_simplices_give_known_entropies_and_fractions() -> None:
    V, n = 4, 10
    one_hot = [60.0, 0.0, 0.0, 0.0]
    uniform = [3.0, 3.0, 3.0, 3.0]
    two_hot = [0.0, 60.0, 60.0, 0.0]
    logits = np.tile(np.array(one_hot + uniform + two_hot, dtype=np.float32), (n, 1))
    report = entropy_report(logits, 3, V, [1.0], bins=8, eps=0.05)

    simplex = report.per_simplex
    np.testing.assert_allclose(simplex["mean"], [0.0, math.log(4), math.log(2)], atol=1e-6)
    np.testing.assert_allclose(simplex["std"], 0.0, atol=1e-6)
    np.testing.assert_allclose(simplex["mean_norm"], [0.0, 1.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(simplex["eff_vertices"], [1.0, 4.0, 2.0], atol=1e-5)
    # Quantiles of a constant are that constant: they are held between min and max.
    for q in ("q05", "q50", "q95"):
        np.testing.assert_array_equal(simplex[q], simplex["min"])
        np.testing.assert_array_equal(simplex[q], simplex["max"])

    summary = report.summary.iloc[0]
    assert summary["frac_one_hot"] == pytest.approx(1 / 3)
    assert summary["frac_two_hot"] == pytest.approx(1 / 3)
    assert summary["frac_uniform"] == pytest.approx(1 / 3)
    assert summary["mean"] == pytest.approx((math.log(4) + math.log(2)) / 3, abs=1e-6)
    assert summary["eff_vertices"] == pytest.approx(7 / 3, abs=1e-5)
    assert (summary["n_samples"], summary["L"], summary["V"]) == (n, 3, V)

    # 8 bins on [0, ln 4]: 0 -> bin 0, ln 2 -> bin 4 (its left edge), ln 4 -> last bin.
    counts = report.histogram["count"].to_numpy()
    assert counts.tolist() == [n, 0, 0, 0, n, 0, 0, n]
    np.testing.assert_allclose(report.histogram["bin_right"].iloc[-1], math.log(4))


def test_eps_controls_the_near_fractions() -> None:
    # Entropy of softmax([1, 0]) is about 0.582: near two-hot (ln 2 = 0.693) only for eps > 0.111.
    logits = np.tile(np.array([1.0, 0.0], dtype=np.float32), (4, 1))
    tight = entropy_report(logits, 1, 2, 1.0, eps=0.1).summary.iloc[0]
    loose = entropy_report(logits, 1, 2, 1.0, eps=0.12).summary.iloc[0]
    assert tight["frac_two_hot"] == 0.0
    assert loose["frac_two_hot"] == 1.0
    assert loose["frac_one_hot"] == 0.0


def test_extreme_logits_and_taus_stay_finite() -> None:
    # Gaps that overflow float32 once divided by tau, and taus far beyond any real use.
    logits = np.array(
        [[0.0, -1e9, 5.0, 5.0], [1e30, -1e30, 1.0, 1.0], [3e38, -3e38, 1.0, 1.0]],
        dtype=np.float32,
    )
    ln2 = math.log(2)
    h_pm1 = dense_entropy(np.array([[1.0, -1.0]]), 1, 2, 1.0).item()
    want = {
        1e-40: [0.0, ln2, 0.0, ln2, 0.0, ln2],
        1.0: [0.0, ln2, 0.0, ln2, 0.0, ln2],
        1e30: [ln2, ln2, h_pm1, ln2, 0.0, ln2],
    }
    got = entropy_kernel(torch.from_numpy(logits), 2, 2, list(want))
    np.testing.assert_allclose(got.reshape(3, -1).numpy(), list(want.values()), atol=1e-6)
    report = entropy_report(logits, 2, 2, list(want))
    np.testing.assert_allclose(report.summary["mean"], [np.mean(v) for v in want.values()])


# -- streamed vs dense -------------------------------------------------------------------------


@pytest.mark.parametrize(("chunk_rows", "bins"), [(13, 64), (40, 10)])
def test_streamed_matches_dense_float64_reference(
    data: tuple[np.ndarray, np.ndarray], chunk_rows: int, bins: int
) -> None:
    logits, labels = data
    L, V, taus, eps = 6, 7, [0.2, 1.0, 5.0], 0.05
    report = entropy_report(
        logits, L, V, taus, labels=labels, bins=bins, eps=eps, chunk_rows=chunk_rows, num_threads=2
    )
    log_v = math.log(V)
    for tau in taus:
        ent = dense_entropy(logits, L, V, tau)
        simplex = rows_of(report.per_simplex, tau)
        np.testing.assert_allclose(simplex["mean"], ent.mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(simplex["std"], ent.std(axis=0), atol=1e-6)
        np.testing.assert_allclose(simplex["std_norm"], ent.std(axis=0) / log_v, atol=1e-6)
        np.testing.assert_allclose(simplex["eff_vertices"], np.exp(ent).mean(axis=0), rtol=1e-6)
        resolution = log_v / report.meta["quantile_bins"]
        for p, column in [(0.05, "q05"), (0.25, "q25"), (0.5, "q50"), (0.95, "q95")]:
            exact = np.quantile(ent, p, axis=0, method="inverted_cdf")
            np.testing.assert_allclose(simplex[column], exact, atol=resolution + 1e-5)

        summary = rows_of(report.summary, tau).iloc[0]
        assert summary["mean"] == pytest.approx(ent.mean(), abs=1e-6)
        assert summary["std"] == pytest.approx(ent.std(), abs=1e-6)
        assert summary["eff_vertices"] == pytest.approx(np.exp(ent).mean(), rel=1e-6)
        assert summary["frac_one_hot"] == pytest.approx((ent < eps).mean())
        assert summary["frac_two_hot"] == pytest.approx((np.abs(ent - math.log(2)) < eps).mean())
        assert summary["frac_uniform"] == pytest.approx((ent > log_v - eps).mean())

        per_class = rows_of(report.per_class, tau)
        assert per_class["class"].tolist() == [0, 1, 2, 3, 4]
        want = [ent[labels == c].mean() for c in range(5)]
        np.testing.assert_allclose(per_class["mean"], want, atol=1e-6)
        assert per_class["n_samples"].tolist() == np.bincount(labels).tolist()

        counts = rows_of(report.histogram, tau)["count"].to_numpy()
        want_counts = np.histogram(ent, bins=bins, range=(0.0, log_v))[0]
        assert counts.sum() == ent.size
        # float32 vs float64 entropies may straddle a bin edge; none do for this seed.
        np.testing.assert_array_equal(counts, want_counts)


# -- quantiles, extremes and consistency: numpy references on the kernel's entropies --------------


def kernel_entropies(logits: np.ndarray, L: int, V: int, taus: list[float]) -> np.ndarray:
    """``(T, N, L)``: the float32 entropies the analysis bins, as float64."""
    block = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    return entropy_kernel(block, L, V, taus).double().numpy()


def exact_quantile(values: np.ndarray, p: float) -> float:
    """The inverted-CDF quantile ``x_(k)``, ``k = ceil(p n)`` (numpy's ``inverted_cdf``)."""
    ordered = np.sort(values.ravel())
    return float(ordered[max(math.ceil(p * ordered.size), 1) - 1])


def bin_width(layout: BinLayout, value: float) -> float:
    """The width of the fine bin the analysis puts ``value`` in (the stated error bound)."""
    ent = torch.tensor([value], dtype=torch.float32)
    code = int(
        layout.codes(
            ent,
            torch.empty(1, dtype=torch.int32),
            torch.empty(1),
            torch.empty(1, dtype=torch.int32),
        )[0]
    )
    edges = layout.edges()
    return float(edges[code + 1] - edges[code])


def check_row(row: pd.Series, values: np.ndarray, layout: BinLayout, probs=QUANTILES) -> None:
    """One table row against numpy on the same values, and against itself."""
    n = values.size
    # The kernel's float32 sums over V run in another order in other block shapes: 1e-6 apart.
    assert row["min"] == pytest.approx(values.min(), rel=1e-6, abs=1e-12)
    assert row["max"] == pytest.approx(values.max(), rel=1e-6, abs=1e-12)
    assert row["mean"] == pytest.approx(values.mean(), rel=1e-5, abs=1e-9)
    if "std" in row:
        assert row["std"] == pytest.approx(values.std(), rel=1e-4, abs=1e-6)
    previous = row["min"]
    for p in probs:
        q = row[entropy_quantiles.quantile_name(p)]
        exact = exact_quantile(values, p)
        # Within the width of the exact value's bin (plus float rounding of the mean).
        tolerance = bin_width(layout, exact) + 1e-6 * (row["mean"] + exact) + 1e-12
        assert abs(q - exact) <= tolerance, (p, q, exact)
        # Consistent with the row's own mean, min and max, and with the other quantiles.
        k = max(math.ceil(p * n), 1)
        slack = 1e-9 * max(row["max"], 1e-30)
        assert row["min"] - slack <= q <= row["max"] + slack
        # k values are <= x_(k) and the rest <= max; n - k + 1 are >= x_(k) and the rest >= min.
        assert k * q >= n * row["mean"] - (n - k) * row["max"] - slack * n
        assert (n - k + 1) * q <= n * row["mean"] - (k - 1) * row["min"] + slack * n
        assert q >= previous
        previous = q


@st.composite
def entropy_problems(draw: st.DrawFn) -> tuple:
    n = draw(st.integers(1, 40))
    L, V = draw(st.integers(1, 4)), draw(st.integers(2, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.normal(0.0, draw(st.sampled_from([0.1, 1.0, 5.0])), size=(n, L * V))
    if draw(st.booleans()):  # sharp simplices: one vertex far ahead, entropies near 0
        logits[:, ::V] += draw(st.sampled_from([5.0, 20.0, 80.0]))
    taus = draw(
        st.lists(st.sampled_from([0.01, 0.1, 0.5, 1.0, 4.0]), min_size=1, max_size=3, unique=True)
    )
    labels = rng.integers(0, draw(st.integers(1, 4)), size=n)
    return logits.astype(np.float32), L, V, taus, labels


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entropy_problems())
def test_every_table_matches_numpy_and_is_consistent(problem: tuple) -> None:
    """Per simplex, per class, per superclass and overall: numpy on the same entropies."""
    logits, L, V, taus, labels = problem
    supers = {c: f"s{c % 2}" for c in range(5)}
    report = entropy_report(
        logits, L, V, taus, labels=labels, superclass_of=supers, num_threads=2, chunk_rows=7
    )
    ent = kernel_entropies(logits, L, V, taus)
    layout = BinLayout(report.meta["quantile_bins"], math.log(V))
    for t, tau in enumerate(taus):
        for row in rows_of(report.per_simplex, tau).to_dict("records"):
            check_row(pd.Series(row), ent[t][:, int(row["simplex"])], layout)
        for row in rows_of(report.per_class, tau).to_dict("records"):
            check_row(pd.Series(row), ent[t][labels == row["class"]], layout)
        for row in rows_of(report.per_superclass, tau).to_dict("records"):
            members = [c for c, s in supers.items() if s == row["superclass"]]
            check_row(pd.Series(row), ent[t][np.isin(labels, members)], layout)
        summary = rows_of(report.summary, tau).iloc[0]
        check_row(summary, ent[t], layout, probs=())
        histogram = rows_of(report.histogram, tau)
        assert histogram["count"].sum() == ent[t].size
        filled = histogram[histogram["count"] > 0]
        # The histogram's occupied bins lie within the reported extremes.
        assert filled["bin_right"].iloc[0] >= summary["min"]
        assert filled["bin_left"].iloc[-1] <= summary["max"]


def test_sharp_simplices_get_quantiles_at_their_own_scale() -> None:
    """The case equal bins got wrong: at tau 0.1, a near one-hot simplex had mean 1.2e-7 and
    q05..q95 = 5e-4..9.5e-3 (all inside the first of 256 equal bins)."""
    rng = np.random.default_rng(3)
    n, V = 4000, 13
    logits = rng.normal(0.0, 0.03, size=(n, V)).astype(np.float32)
    logits[:, 0] += rng.uniform(2.0, 2.3, size=n).astype(np.float32)  # gap / tau ~ 21
    report = entropy_report(logits, 1, V, [0.1])
    row = report.per_simplex.iloc[0]
    ent = kernel_entropies(logits, 1, V, [0.1])[0, :, 0]
    assert 1e-8 < row["mean"] < 1e-5
    for p in QUANTILES:
        exact = exact_quantile(ent, p)
        q = row[entropy_quantiles.quantile_name(p)]
        assert abs(q - exact) <= exact / entropy_bins.SUB_BINS, (p, q, exact)
    assert row["q95"] <= row["mean"] * n / (n - math.ceil(0.95 * n) + 1) + 1e-15
    check_row(row, ent, BinLayout(256, math.log(V)))


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.0, 20.0, allow_nan=False, width=32),
    st.integers(2, 50),
    st.sampled_from([1, 8, 16, 64, 256, 1000]),
)
def test_every_entropy_falls_in_a_bin_no_wider_than_stated(
    value: float, vocab: int, quantile_bins: int
) -> None:
    layout = BinLayout(quantile_bins, math.log(vocab))
    h = min(value, math.log(vocab))
    width = bin_width(layout, h)
    edges = layout.edges()
    assert np.all(np.diff(edges) >= 0) and edges[0] == 0.0
    assert edges[-1] == pytest.approx(math.log(vocab))
    floor = entropy_bins.floor_nats(math.log(vocab), quantile_bins)
    assert width <= math.log(vocab) / quantile_bins * (1 + 1e-9)
    sub = entropy_bins.SUB_BINS
    assert width <= max(h / sub, floor * (1 + 1 / sub)) * (1 + 1e-6) + 1e-300


def test_coarse_histogram_is_a_sum_of_fine_bins() -> None:
    layout = BinLayout(256, math.log(13))
    mapping = layout.coarse_map(64)
    edges = layout.edges()
    coarse = np.linspace(0.0, math.log(13), 65)
    for fine, big in enumerate(mapping):
        assert coarse[big] - 1e-12 <= edges[fine] and edges[fine + 1] <= coarse[big + 1] + 1e-12


@pytest.mark.parametrize(
    "module", [entropy_bins, entropy_quantiles], ids=lambda m: m.__name__.rsplit(".", 1)[-1]
)
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def test_results_do_not_depend_on_chunking_or_threads(data: tuple[np.ndarray, np.ndarray]) -> None:
    logits, labels = data
    one = entropy_report(logits, 6, 7, [0.5, 2.0], labels=labels, chunk_rows=1, num_threads=1)
    many = entropy_report(logits, 6, 7, [0.5, 2.0], labels=labels, num_threads=3)
    for name in ("per_simplex", "per_class", "summary"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(many, name), rtol=1e-6)
    pd.testing.assert_frame_equal(one.histogram, many.histogram)


@pytest.mark.parametrize("bins", [1, 7, 64, 256])
def test_histogram_counts_sum_to_n_times_l(data: tuple[np.ndarray, np.ndarray], bins: int) -> None:
    logits, _ = data
    report = entropy_report(logits, 6, 7, [0.01, 1.0, 100.0], bins=bins, chunk_rows=50)
    totals = report.histogram.groupby("tau")["count"].sum()
    assert totals.tolist() == [157 * 6] * 3
    assert len(report.histogram) == 3 * bins


def test_mean_entropy_goes_from_zero_to_ln_v_monotonically() -> None:
    rng = np.random.default_rng(1)
    L, V = 8, 13
    logits = rng.normal(0.0, 1.0, size=(64, L * V)).astype(np.float32)
    taus = np.geomspace(1e-4, 1e4, 25).tolist()
    means = entropy_report(logits, L, V, taus).summary["mean"].to_numpy()
    assert means[0] < 1e-3
    assert means[-1] > math.log(V) - 1e-3
    assert np.all(np.diff(means) >= -1e-6), means


# -- inputs ------------------------------------------------------------------------------------


def test_float16_memmap_equals_in_memory_array(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray]
) -> None:
    logits, labels = data
    path = tmp_path / "logits.npy"
    np.save(path, logits.astype(np.float16))
    mapped = np.load(path, mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    taus = [0.3, 3.0]
    from_disk = entropy_report(mapped, 6, 7, taus, labels=labels, chunk_rows=16)
    # The same float16 values, in memory as float32: identical up to float32 rounding.
    same_values = entropy_report(mapped.astype(np.float32), 6, 7, taus, labels=labels)
    for name in ("per_simplex", "per_class", "summary"):
        pd.testing.assert_frame_equal(
            getattr(from_disk, name), getattr(same_values, name), rtol=1e-6
        )
    # Against the float32 originals: float16 rounding of logits of size ~4 is ~2e-3.
    original = entropy_report(logits, 6, 7, taus, labels=labels)
    np.testing.assert_allclose(
        from_disk.per_simplex["mean"], original.per_simplex["mean"], atol=5e-3
    )
    np.testing.assert_allclose(from_disk.summary["std"], original.summary["std"], atol=5e-3)


def test_row_pager_only_releases_shared_file_mappings(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((64, 1024), dtype=np.float32))
    assert RowPager(np.load(path, mmap_mode="r")).active
    assert RowPager(np.load(path, mmap_mode="r+")).active
    # Copy-on-write pages may hold changes that dropping them would lose.
    assert not RowPager(np.load(path, mmap_mode="c")).active
    assert not RowPager(np.zeros((4, 4))).active
    mapped = np.load(path, mmap_mode="r")
    pager = RowPager(mapped)
    pager.prefetch(0, 32)
    pager.release(0, 64)
    assert float(mapped[63, 1023]) == 0.0


def test_class_names_and_superclasses(data: tuple[np.ndarray, np.ndarray]) -> None:
    logits, labels = data
    names = ["cat", "dog", "oak", "elm", "ant"]
    supers = {"cat": "animal", "dog": "animal", "ant": "animal", "oak": "tree", 3: "tree"}
    report = entropy_report(
        logits, 6, 7, [1.0], labels=labels, class_names=names, superclass_of=supers
    )
    assert report.per_class["class"].tolist() == names
    ent = dense_entropy(logits, 6, 7, 1.0)
    animal = np.isin(labels, [0, 1, 4])
    sup = report.per_superclass.set_index("superclass")
    assert sup.loc["animal", "mean"] == pytest.approx(ent[animal].mean(), abs=1e-6)
    assert sup.loc["tree", "mean"] == pytest.approx(ent[~animal].mean(), abs=1e-6)
    assert sup.loc["tree", "n_samples"] == int((~animal).sum())
    # A sequence indexed by label works the same way.
    by_index = entropy_report(
        logits,
        6,
        7,
        [1.0],
        labels=labels,
        superclass_of=["animal", "animal", "tree", "tree", "animal"],
    )
    pd.testing.assert_frame_equal(by_index.per_superclass, report.per_superclass)


def test_without_labels_class_tables_are_empty(data: tuple[np.ndarray, np.ndarray]) -> None:
    report = entropy_report(data[0], 6, 7, 1.0)
    assert report.per_class.empty
    assert list(report.per_class.columns) == [
        "tau",
        "class",
        "mean",
        "min",
        "max",
        "q05",
        "q25",
        "q50",
        "q75",
        "q95",
        "n_samples",
    ]
    assert report.per_superclass.empty


def test_torch_thread_setting_is_restored(data: tuple[np.ndarray, np.ndarray]) -> None:
    before = torch.get_num_threads()
    entropy_report(data[0], 6, 7, [1.0], num_threads=2)
    assert torch.get_num_threads() == before


def test_progress_bar(data: tuple[np.ndarray, np.ndarray], capsys: pytest.CaptureFixture) -> None:
    entropy_report(data[0], 6, 7, [1.0], chunk_rows=50, progress=True)
    assert "157" in capsys.readouterr().err


# -- round trip --------------------------------------------------------------------------------


def test_to_dir_from_dir_round_trip(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    logits, labels = data
    report = entropy_report(
        logits,
        6,
        7,
        [0.5, 2.0],
        labels=labels,
        class_names=list("abcde"),
        superclass_of=list("xxyyx"),
    )
    out = report.to_dir(tmp_path / "report", csv=True)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            f"{t}.{ext}"
            for t in report.__dataclass_fields__
            if t != "meta"
            for ext in ("parquet", "csv")
        ]
        + ["meta.json"]
    )
    back = EntropyReport.from_dir(out)
    for name in ("per_simplex", "histogram", "per_class", "per_superclass", "summary"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(report, name))
    assert back.meta == report.meta
    csv = pd.read_csv(out / "summary.csv")
    np.testing.assert_allclose(csv["mean"], report.summary["mean"])

    empty = entropy_report(logits, 6, 7, [1.0])
    again = EntropyReport.from_dir(empty.to_dir(tmp_path / "empty"))
    assert again.per_class.empty
    assert list(again.per_class.columns) == list(empty.per_class.columns)


def test_from_dir_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SemprobeError, match=r"per_simplex\.parquet"):
        EntropyReport.from_dir(tmp_path)


# -- bad inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"taus": [0]}, r"tau .*got 0"),
        ({"taus": [1.0, "x"]}, r"tau .*got 'x'"),
        ({"taus": [-1.0]}, r"got -1\.0"),
        ({"taus": [float("nan")]}, r"got nan"),
        ({"taus": []}, r"taus is empty"),
        ({"taus": [1.0, 1]}, r"tau 1 is given twice"),
        ({"vocab": 8}, r"feature width 42 is not L\*V = 6\*8 = 48"),
        ({"num_simplices": 7}, r"feature width 42 is not L\*V = 7\*7 = 49"),
        ({"labels": np.zeros(156, dtype=int)}, r"labels must have shape \(157,\).*\(156,\)"),
        ({"labels": -np.ones(157, dtype=int)}, r"labels must be >= 0, got -1"),
        ({"labels": np.zeros(157, dtype=int), "class_names": []}, r"label 0 has no name"),
        ({"class_names": ["a"]}, r"class_names needs labels"),
        ({"eps": 0}, r"eps must be a positive number, got 0"),
        ({"bins": 0}, r"bins must be a positive integer, got 0"),
        ({"chunk_rows": 0}, r"chunk_rows must be a positive integer, got 0"),
        ({"quantiles": [0.5, 1.0]}, r"quantiles must lie in \(0, 1\), got 1\.0"),
    ],
)
def test_bad_inputs_raise_one_line_naming_the_value(
    data: tuple[np.ndarray, np.ndarray], kwargs: dict, message: str
) -> None:
    args = {"logits": data[0], "num_simplices": 6, "vocab": 7, "taus": [1.0]} | kwargs
    with pytest.raises(SemprobeError, match=message) as info:
        entropy_report(**args)
    assert "\n" not in str(info.value)


def test_bad_arrays_are_rejected() -> None:
    with pytest.raises(SemprobeError, match=r"shape \(N, L\*V\), got shape \(12,\)"):
        entropy_report(np.zeros(12, dtype=np.float32), 3, 4, 1.0)
    with pytest.raises(SemprobeError, match="dtype int64"):
        entropy_report(np.zeros((2, 12), dtype=np.int64), 3, 4, 1.0)
    with pytest.raises(SemprobeError, match="N = 0"):
        entropy_report(np.zeros((0, 12), dtype=np.float32), 3, 4, 1.0)
    with pytest.raises(SemprobeError, match="vocab must be >= 2"):
        entropy_report(np.zeros((2, 3), dtype=np.float32), 3, 1, 1.0)
    if np.dtype(np.longdouble).itemsize > 8:
        with pytest.raises(SemprobeError, match="got dtype float"):
            entropy_report(np.zeros((2, 12), dtype=np.longdouble), 3, 4, 1.0)


def test_big_endian_and_float64_inputs_match_float32(data: tuple[np.ndarray, np.ndarray]) -> None:
    logits = data[0]
    want = entropy_report(logits, 6, 7, [0.5, 2.0]).per_simplex
    for other in (logits.astype(">f4"), logits.astype(np.float64)):
        got = entropy_report(other, 6, 7, [0.5, 2.0]).per_simplex
        pd.testing.assert_frame_equal(got, want, rtol=1e-6)


def test_non_finite_logits_name_the_row() -> None:
    logits = np.zeros((40, 12), dtype=np.float32)
    logits[27, 5] = np.nan
    with pytest.raises(SemprobeError, match="logits row 27 contains a non-finite value"):
        entropy_report(logits, 3, 4, [1.0], chunk_rows=10)
    logits[27, 5] = np.inf
    with pytest.raises(SemprobeError, match="row 27"):
        entropy_report(logits, 3, 4, [1.0])


# -- device ------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(data: tuple[np.ndarray, np.ndarray]) -> None:
    logits, labels = data
    taus = [0.1, 1.0, 10.0]
    cpu = entropy_report(logits, 6, 7, taus, labels=labels, chunk_rows=40)
    gpu = entropy_report(logits, 6, 7, taus, labels=labels, chunk_rows=40, device="cuda")
    for name in ("per_simplex", "per_class", "summary"):
        pd.testing.assert_frame_equal(getattr(cpu, name), getattr(gpu, name), rtol=1e-5)
    diff = np.abs(cpu.histogram["count"] - gpu.histogram["count"]).sum()
    assert diff <= 2
