"""Tests for semantic relevance and its permutation null model (semprobe.relevance)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semprobe.errors import SemprobeError
from semprobe.graph import top_k_graph, two_neighbours
from semprobe.relevance import (
    chance_level,
    encode_superclasses,
    null_distribution,
    relevance,
    relevance_curve,
    relevance_with_null,
)
from tests.test_graph import HAND_W

# HAND_W is the hand case of tests/test_graph.py. With K=2 the 2-neighbours are
# N(c0)={c1,c3}, N(c1)={c0,c4}, N(c3)={c0}, N(c4)={c1}; c2 (no edge) and c5 (an unshared
# feature) are isolated.
HAND_SUPER = ["a", "a", "b", "b", "b", "a"]

# c0 and c1 share two features (f0, f1); c2 shares f0 with both.
MULTI_W = np.array([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [1.0, 0.0, 2.0]])
MULTI_SUPER = [0, 0, 1]

CIFAR_LIKE = np.repeat(np.arange(20), 5)  # 20 superclasses x 5 categories


def planted_weights(superclasses: np.ndarray, per_super: int = 3, seed: int = 0) -> np.ndarray:
    """Probe weights where each superclass owns ``per_super`` features with large weights."""
    rng = np.random.default_rng(seed)
    n_super = int(superclasses.max()) + 1
    w = rng.normal(0.0, 0.1, size=(superclasses.size, n_super * per_super)) - 0.5
    for c, s in enumerate(superclasses):
        w[c, per_super * s : per_super * (s + 1)] = 1.0 + rng.random(per_super)
    return w


def test_hand_case_relevance() -> None:
    counts = two_neighbours(top_k_graph(HAND_W, 2))
    result = relevance(counts, HAND_SUPER)
    # c0: {c1 (a), c3 (b)} -> 1/2; c1: {c0 (a), c4 (b)} -> 1/2; c3: {c0} -> 0; c4: {c1} -> 0.
    np.testing.assert_array_equal(result.per_category, [0.5, 0.5, 0.0, 0.0, 0.0, 0.0])
    assert result.total == 1.0
    assert result.n_isolated == 2
    assert result.n_categories == 6
    assert result.n_connected == 4
    assert result.mean == 0.25
    np.testing.assert_array_equal(result.isolated, [False, False, True, False, False, True])


def test_relevance_accepts_int_labels_and_arrays() -> None:
    counts = two_neighbours(top_k_graph(HAND_W, 2))
    as_ints = relevance(counts, np.array([1, 1, 2, 2, 2, 1]))
    assert as_ints.total == 1.0
    assert relevance(counts, pd.Series(HAND_SUPER)).total == 1.0


def test_multiplicity_changes_the_answer() -> None:
    graph = top_k_graph(MULTI_W, 2)
    as_set = relevance(two_neighbours(graph), MULTI_SUPER)
    # c0: {c1 same, c2 other} -> 1/2; c1 likewise; c2: {c0, c1} both other -> 0.
    np.testing.assert_allclose(as_set.per_category, [0.5, 0.5, 0.0])
    assert as_set.mean == pytest.approx(1 / 3)

    counts = two_neighbours(graph, multiplicity=True)
    weighted = relevance(counts, MULTI_SUPER, multiplicity=True)
    # c0 shares 2 features with c1 (same) and 1 with c2: (2*1 + 1*0) / 3.
    np.testing.assert_allclose(weighted.per_category, [2 / 3, 2 / 3, 0.0])
    assert weighted.total == pytest.approx(4 / 3)
    assert weighted.mean == pytest.approx(4 / 9)
    # The same counts read as a set give the set answer.
    assert relevance(counts, MULTI_SUPER).total == pytest.approx(1.0)


def test_feature_rule_relevance() -> None:
    w = np.array([[1.0, 0.0, 0.0], [1.0, 3.0, 0.0], [0.0, 2.0, 0.0]])
    test = relevance_with_null(w, ["a", "a", "b"], 2, rule="feature", n_permutations=10)
    # Edges f0-{c0,c1}, f1-{c1,c2}: c0: {c1} -> 1; c1: {c0, c2} -> 1/2; c2: {c1} -> 0.
    np.testing.assert_allclose(test.observed.per_category, [1.0, 0.5, 0.0])
    assert test.observed.total == pytest.approx(1.5)
    assert (test.k, test.rule) == (2, "feature")


def test_all_isolated() -> None:
    w = np.eye(4)  # every category keeps its own feature: nobody shares
    test = relevance_with_null(w, [0, 0, 1, 1], 1, n_permutations=20)
    assert test.observed.total == 0.0
    assert math.isnan(test.observed.mean)
    assert test.observed.n_isolated == 4
    assert math.isnan(test.null_mean)
    assert math.isnan(test.z)
    assert test.p_value == 1.0
    assert test.as_dict()["mean"] is None


def test_chance_level() -> None:
    assert chance_level(CIFAR_LIKE) == pytest.approx(4 / 99)
    assert chance_level(["x", "x", "y", "y"]) == pytest.approx(1 / 3)
    assert chance_level(["x", "x", "y"]) is None


def test_null_mean_matches_analytic_chance_on_random_graph() -> None:
    w = np.random.default_rng(1).normal(size=(100, 200))
    counts = two_neighbours(top_k_graph(w, 5))
    null = null_distribution(counts, CIFAR_LIKE, n_permutations=1000, seed=0)
    assert null.shape == (1000,)
    # Standard error of the null mean is about 0.0003.
    assert null.mean() == pytest.approx(4 / 99, abs=0.002)
    test = relevance_with_null(counts, CIFAR_LIKE)
    assert test.chance == pytest.approx(4 / 99)
    assert test.null_mean == pytest.approx(null.mean())
    np.testing.assert_array_equal(test.null, null)


def test_null_distribution_is_fast() -> None:
    w = np.random.default_rng(2).normal(size=(100, 300))
    counts = two_neighbours(top_k_graph(w, 10))
    start = time.perf_counter()
    null_distribution(counts, CIFAR_LIKE, n_permutations=1000)
    assert time.perf_counter() - start < 1.0


def test_planted_superclass_features() -> None:
    w = planted_weights(CIFAR_LIKE)
    test = relevance_with_null(w, CIFAR_LIKE, 3)
    assert test.observed.mean == 1.0
    assert test.observed.total == 100.0
    assert test.observed.n_isolated == 0
    assert test.p_value == pytest.approx(1 / 1001)  # no permutation reaches 1
    assert test.z > 10
    assert test.null_mean == pytest.approx(4 / 99, abs=0.005)


def test_scrambled_superclasses_are_at_chance() -> None:
    w = planted_weights(CIFAR_LIKE)
    scrambled = np.random.default_rng(1).permutation(CIFAR_LIKE)
    test = relevance_with_null(w, scrambled, 3)
    assert test.observed.mean == pytest.approx(4 / 99, abs=0.03)
    assert test.p_value > 0.2
    assert abs(test.z) < 2


def test_p_value_and_z_formulae() -> None:
    w = planted_weights(CIFAR_LIKE)
    scrambled = np.random.default_rng(3).permutation(CIFAR_LIKE)
    test = relevance_with_null(w, scrambled, 3, n_permutations=200, seed=5)
    n_ge = int((test.null >= test.observed.mean - 1e-12).sum())
    assert test.p_value == (1 + n_ge) / 201
    assert test.null_std == pytest.approx(np.std(test.null, ddof=1))
    assert test.z == pytest.approx((test.observed.mean - test.null_mean) / test.null_std)


def test_null_keeps_graph_and_is_seeded() -> None:
    counts = two_neighbours(top_k_graph(planted_weights(CIFAR_LIKE), 3))
    a = null_distribution(counts, CIFAR_LIKE, n_permutations=50, seed=7)
    b = null_distribution(counts, CIFAR_LIKE, n_permutations=50, seed=7)
    c = null_distribution(counts, CIFAR_LIKE, n_permutations=50, seed=8)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    # Planted graph = 20 disjoint 5-cliques: a null value is a mean of fractions k/4.
    np.testing.assert_allclose((a * 400) % 1, 0, atol=1e-9)


def test_relevance_with_null_sources_agree() -> None:
    w = np.random.default_rng(4).normal(size=(30, 40))
    labels = np.repeat(["p", "q", "r"], 10)
    graph = top_k_graph(w, 4)
    from_w = relevance_with_null(w, labels, 4, n_permutations=100)
    from_graph = relevance_with_null(graph, labels, n_permutations=100)
    from_counts = relevance_with_null(two_neighbours(graph), labels, n_permutations=100)
    for other in (from_graph, from_counts):
        assert other.observed.total == from_w.observed.total
        assert other.p_value == from_w.p_value
        assert other.null.tobytes() == from_w.null.tobytes()
    assert from_counts.k is None
    assert from_graph.k == 4
    with pytest.raises(SemprobeError, match="K=4"):
        relevance_with_null(graph, labels, 5)
    json.dumps(from_w.as_dict(), allow_nan=False)


def test_relevance_curve_is_tidy_and_deterministic() -> None:
    w = planted_weights(CIFAR_LIKE)
    ks = [1, 2, 3, 6]
    frame = relevance_curve(w, CIFAR_LIKE, ks, n_permutations=200)
    assert list(frame.columns) == [
        "k",
        "total",
        "mean",
        "n_isolated",
        "null_mean",
        "null_std",
        "z",
        "p",
    ]
    assert frame["k"].tolist() == ks
    assert frame["k"].dtype == np.int64
    assert frame["n_isolated"].dtype == np.int64
    # With K<=3 every category keeps only features of its own superclass.
    assert frame["mean"].tolist()[:3] == [1.0, 1.0, 1.0]
    # K=1: the top feature is shared only when two categories pick the same one.
    expected = relevance_with_null(w, CIFAR_LIKE, 1, n_permutations=200)
    assert frame.loc[0, "n_isolated"] == expected.observed.n_isolated
    assert frame.loc[0, "p"] == expected.p_value
    row = relevance_with_null(w, CIFAR_LIKE, 6, n_permutations=200)
    assert frame.loc[3, "total"] == row.observed.total
    assert frame.loc[3, "null_std"] == row.null_std

    again = relevance_curve(w, CIFAR_LIKE, ks, n_permutations=200)
    assert frame.to_csv().encode() == again.to_csv().encode()
    pd.testing.assert_frame_equal(frame, again)


@pytest.mark.parametrize(
    ("superclasses", "match"),
    [
        (["a"] * 6, "fewer than 2 superclasses"),
        ([3] * 6, "fewer than 2 superclasses"),
        (["a", "b"], "2 superclass labels for 6 categories"),
        (["a", "b", None, "a", "b", "a"], "no superclass label"),
        (["a", "b", float("nan"), "a", "b", "a"], "no superclass label"),
        ("aabbba", "single string"),
    ],
)
def test_bad_superclasses(superclasses: object, match: str) -> None:
    counts = two_neighbours(top_k_graph(HAND_W, 2))
    with pytest.raises(SemprobeError, match=match):
        relevance(counts, superclasses)  # type: ignore[arg-type]
    with pytest.raises(SemprobeError, match=match):
        relevance_with_null(HAND_W, superclasses, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("k", "match"), [(0, "at least 1"), (6, r"K=6 .*features \(5\)"), (-1, "at least 1")]
)
def test_bad_k(k: int, match: str) -> None:
    with pytest.raises(SemprobeError, match=match):
        relevance_with_null(HAND_W, HAND_SUPER, k)
    with pytest.raises(SemprobeError, match=match):
        relevance_curve(HAND_W, HAND_SUPER, [1, k])


@pytest.mark.parametrize(
    "counts",
    [np.ones((2, 3)), -np.ones((6, 6)), np.full((6, 6), 0.5), np.full((6, 6), np.nan)],
)
def test_bad_neighbour_counts(counts: np.ndarray) -> None:
    with pytest.raises(SemprobeError, match="neighbour counts"):
        relevance(counts, HAND_SUPER)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_permutations": 0}, "n_permutations"),
        ({"n_permutations": 2.5}, "n_permutations"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_null_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SemprobeError, match=match):
        relevance_with_null(HAND_W, HAND_SUPER, 2, **kwargs)  # type: ignore[arg-type]


def test_empty_ks() -> None:
    with pytest.raises(SemprobeError, match="at least one K"):
        relevance_curve(HAND_W, HAND_SUPER, [])


def test_encode_superclasses_first_appearance() -> None:
    np.testing.assert_array_equal(encode_superclasses(["z", "a", "z", 1], 4), [0, 1, 0, 2])


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.ndarray, list[str], int, bool]:
    n_cat = draw(st.integers(2, 8))
    n_feat = draw(st.integers(1, 6))
    values = draw(st.lists(st.integers(-2, 3), min_size=n_cat * n_feat, max_size=n_cat * n_feat))
    labels = draw(
        st.lists(st.sampled_from("xyz"), min_size=n_cat, max_size=n_cat).filter(
            lambda ls: len(set(ls)) >= 2
        )
    )
    k = draw(st.integers(1, n_feat))
    multiplicity = draw(st.booleans())
    return np.array(values, dtype=float).reshape(n_cat, n_feat), labels, k, multiplicity


def reference_per_category(w: np.ndarray, labels: list[str], k: int, mult: bool) -> list[float]:
    """Loop-based reading of the paper's formula."""
    n_cat, n_feat = w.shape
    kept = []
    for c in range(n_cat):
        ranked = sorted(range(n_feat), key=lambda f: (-w[c, f], f))[:k]
        kept.append({f for f in ranked if w[c, f] > 0})
    out = []
    for i in range(n_cat):
        weights = {
            j: (len(kept[i] & kept[j]) if mult else 1)
            for j in range(n_cat)
            if j != i and kept[i] & kept[j]
        }
        denominator = sum(weights.values())
        same = sum(v for j, v in weights.items() if labels[j] == labels[i])
        out.append(same / denominator if denominator else 0.0)
    return out


@settings(max_examples=120, deadline=None)
@given(cases())
def test_properties(case: tuple[np.ndarray, list[str], int, bool]) -> None:
    w, labels, k, mult = case
    counts = two_neighbours(top_k_graph(w, k), multiplicity=mult)
    result = relevance(counts, labels, multiplicity=mult)
    np.testing.assert_allclose(result.per_category, reference_per_category(w, labels, k, mult))
    assert ((result.per_category >= 0) & (result.per_category <= 1)).all()
    assert result.total == pytest.approx(float(result.per_category.sum()))
    if result.n_isolated == result.n_categories:
        assert math.isnan(result.mean)
    else:
        assert 0.0 <= result.mean <= 1.0
        assert result.mean * result.n_connected == pytest.approx(result.total)
    assert not result.per_category[result.isolated].any()

    test = relevance_with_null(w, labels, k, multiplicity=mult, n_permutations=30, seed=1)
    assert 0.0 < test.p_value <= 1.0
    assert (test.p_value * 31) == pytest.approx(round(test.p_value * 31))
    assert test.observed.total == result.total


@settings(max_examples=120, deadline=None)
@given(cases(), st.randoms(use_true_random=False))
def test_invariant_under_consistent_relabelling(
    case: tuple[np.ndarray, list[str], int, bool], rnd
) -> None:
    w, labels, k, mult = case
    order = list(range(w.shape[0]))
    rnd.shuffle(order)
    renamed = {"x": 10, "y": "other", "z": -3}
    # Permuting rows keeps each row's tie order (ties are among features), so W_K is the same
    # graph with its categories renumbered.
    relabelled = [renamed[labels[i]] for i in order]
    base = relevance(two_neighbours(top_k_graph(w, k), mult), labels, mult)
    moved = relevance(two_neighbours(top_k_graph(w[order], k), mult), relabelled, mult)
    np.testing.assert_array_equal(moved.per_category, base.per_category[order])
    np.testing.assert_array_equal(moved.isolated, base.isolated[order])
    assert moved.total == pytest.approx(base.total)
    assert moved.n_isolated == base.n_isolated
    assert moved.mean == pytest.approx(base.mean, nan_ok=True)
