"""Tests for the feature-category graph W_K (semprobe.graph)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semprobe.errors import SemprobeError
from semprobe.graph import (
    FeatureCategoryGraph,
    sem_feature_name,
    to_networkx,
    top_k_graph,
    two_neighbours,
    write_graphml,
)

# c0: tie between f1 and f2 at weight 1 -> f1 (lower index) wins the second slot.
# c1: f3 then f1.
# c2: only non-positive weights -> no edge at all.
# c3: tie between f0 and f4 with K=2 -> both kept.
# c4: a single positive weight -> one edge only (fewer than K).
# c5: f2 alone, which nobody else kept -> has an edge but no 2-neighbour.
HAND_W = np.array(
    [
        [3.0, 1.0, 1.0, 0.0, -1.0],
        [0.0, 2.0, 0.0, 5.0, 0.0],
        [-1.0, -2.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0, 1.0],
        [0.0, 0.0, 0.0, 2.0, 0.0],
        [0.0, 0.0, 4.0, 0.0, 0.0],
    ]
)
HAND_EDGES = [(0, 0), (0, 1), (1, 1), (1, 3), (3, 0), (3, 4), (4, 3), (5, 2)]


def edges(graph: FeatureCategoryGraph) -> list[tuple[int, int]]:
    return list(zip(graph.category.tolist(), graph.feature.tolist(), strict=True))


def reference_edges(w: np.ndarray, k: int, rule: str) -> set[tuple[int, int]]:
    """Literal, loop-based reading of the definition of W_K."""
    n_cat, n_feat = w.shape
    out: set[tuple[int, int]] = set()
    if rule == "category":
        for c in range(n_cat):
            ranked = sorted(range(n_feat), key=lambda f: (-w[c, f], f))[:k]
            out |= {(c, f) for f in ranked if w[c, f] > 0}
    else:
        for f in range(n_feat):
            if not np.any(w[:, f] != 0):
                continue
            ranked = sorted(range(n_cat), key=lambda c: (-w[c, f], c))[:k]
            out |= {(c, f) for c in ranked if w[c, f] > 0}
    return out


def test_category_rule_hand_case() -> None:
    graph = top_k_graph(HAND_W, 2)
    assert edges(graph) == HAND_EDGES
    assert graph.weight.tolist() == [3.0, 1.0, 2.0, 5.0, 1.0, 1.0, 2.0, 4.0]
    assert (graph.n_categories, graph.n_features, graph.k, graph.rule) == (6, 5, 2, "category")
    assert graph.n_edges == 8
    assert graph.category_degree().tolist() == [2, 2, 0, 2, 1, 1]
    assert graph.feature_degree().tolist() == [2, 2, 1, 2, 1]


def test_k1_keeps_lowest_index_among_ties() -> None:
    graph = top_k_graph(np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 2.0]]), 1)
    assert edges(graph) == [(0, 0), (1, 1)]


def test_two_neighbours_hand_case() -> None:
    counts = two_neighbours(top_k_graph(HAND_W, 2))
    expected = np.zeros((6, 6), dtype=np.int64)
    for i, j in [(0, 1), (0, 3), (1, 4)]:
        expected[i, j] = expected[j, i] = 1
    np.testing.assert_array_equal(counts, expected)
    assert counts.dtype == np.int64


def test_two_neighbours_multiplicity_counts_shared_features() -> None:
    w = np.array([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [1.0, 0.0, 2.0]])
    graph = top_k_graph(w, 2)
    assert edges(graph) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 2)]
    np.testing.assert_array_equal(
        two_neighbours(graph, multiplicity=True), [[0, 2, 1], [2, 0, 1], [1, 1, 0]]
    )
    np.testing.assert_array_equal(two_neighbours(graph), [[0, 1, 1], [1, 0, 1], [1, 1, 0]])


def test_feature_rule_hand_case() -> None:
    w = np.array(
        [
            [1.0, 0.0, 0.0, -1.0],
            [1.0, 3.0, 0.0, -2.0],
            [0.0, 2.0, 0.0, -3.0],
        ]
    )
    # f0 ties c0/c1 -> c0; f1 -> c1; all-zero f2 and all-negative f3 get nothing.
    assert edges(top_k_graph(w, 1, rule="feature")) == [(0, 0), (1, 1)]
    graph = top_k_graph(w, 2, rule="feature")
    assert edges(graph) == [(0, 0), (1, 0), (1, 1), (2, 1)]
    assert graph.rule == "feature"
    np.testing.assert_array_equal(two_neighbours(graph), [[0, 1, 0], [1, 0, 1], [0, 1, 0]])


@pytest.mark.parametrize(
    ("k", "rule", "match"),
    [
        (0, "category", "at least 1"),
        (-3, "category", "at least 1"),
        (6, "category", r"K=6 .*features \(5\)"),
        (7, "feature", r"K=7 .*categories \(6\)"),
        (True, "category", "integer"),
        (2.0, "category", "integer"),
        (2, "rows", "rule"),
    ],
)
def test_bad_k_or_rule(k: object, rule: str, match: str) -> None:
    with pytest.raises(SemprobeError, match=match):
        top_k_graph(HAND_W, k, rule=rule)  # type: ignore[arg-type]


def test_k_equal_to_count_is_allowed() -> None:
    assert top_k_graph(HAND_W, 5).n_edges == int((HAND_W > 0).sum())
    assert top_k_graph(HAND_W, 6, rule="feature").n_edges == int((HAND_W > 0).sum())


@pytest.mark.parametrize(
    "w", [np.ones(3), np.ones((2, 0)), np.array([[1.0, np.nan]]), [["a", "b"]]]
)
def test_bad_weights(w: object) -> None:
    with pytest.raises(SemprobeError):
        top_k_graph(w, 1)  # type: ignore[arg-type]


def test_graph_is_immutable_and_validated() -> None:
    graph = top_k_graph(HAND_W, 2)
    with pytest.raises(ValueError, match="read-only"):
        graph.weight[0] = 9.0
    with pytest.raises(SemprobeError, match="out of range"):
        FeatureCategoryGraph(2, 2, 1, "category", np.array([2]), np.array([0]), np.array([1.0]))


def test_sem_feature_name() -> None:
    assert sem_feature_name(0, 5) == "s0v0"
    assert sem_feature_name(13, 5) == "s2v3"
    assert sem_feature_name(4999, 100) == "s49v99"
    with pytest.raises(SemprobeError):
        sem_feature_name(3, 0)
    with pytest.raises(SemprobeError):
        sem_feature_name(-1, 5)


def test_to_networkx_attributes() -> None:
    graph = top_k_graph(HAND_W, 2)
    names = ["apple", "bee", "car", "dog", "eel", "fox"]
    supers = ["fruit", "insect", "vehicle", "animal", "animal", 7]
    g = to_networkx(graph, names, superclass_of=supers)
    assert nx.is_bipartite(g)
    # All 6 categories (also the isolated c2) and the 5 features that have an edge.
    assert sorted(g.nodes) == sorted([f"c{i}" for i in range(6)] + [f"f{j}" for j in range(5)])
    assert g.nodes["c2"] == {
        "bipartite": 0,
        "kind": "category",
        "name": "car",
        "index": 2,
        "superclass": "vehicle",
    }
    assert g.nodes["c5"]["superclass"] == "7"
    assert g.nodes["f4"] == {"bipartite": 1, "kind": "feature", "name": "f4", "index": 4}
    assert g.edges["c1", "f3"]["weight"] == 5.0
    assert g.number_of_edges() == 8
    assert g.graph == {"k": 2, "rule": "category", "n_categories": 6, "n_features": 5}


def test_to_networkx_isolated_features_and_mapping() -> None:
    w = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    graph = top_k_graph(w, 1)
    assert "f1" not in to_networkx(graph, ["a", "b"]).nodes
    g = to_networkx(
        graph,
        ["a", "b"],
        feature_names=[sem_feature_name(j, 3) for j in range(3)],
        superclass_of={"a": "x", "b": "y"},
        include_isolated_features=True,
    )
    assert g.nodes["f1"]["name"] == "s0v1"
    assert g.degree["f1"] == 0
    assert g.nodes["c1"]["superclass"] == "y"
    with pytest.raises(SemprobeError, match="no superclass"):
        to_networkx(graph, ["a", "b"], superclass_of={"a": "x"})
    with pytest.raises(SemprobeError, match="1 category names"):
        to_networkx(graph, ["a"])
    with pytest.raises(SemprobeError, match="1 superclass labels"):
        to_networkx(graph, ["a", "b"], superclass_of=["x"])


def test_graphml_round_trip(tmp_path) -> None:
    graph = top_k_graph(HAND_W, 2)
    names = ["apple", "bee", "car", "dog", "eel", "fox"]
    feature_names = [sem_feature_name(j, 5) for j in range(5)]
    g = to_networkx(graph, names, feature_names, superclass_of=list("aabbba"))
    path = write_graphml(g, tmp_path / "sub" / "wk.graphml")
    assert path == tmp_path / "sub" / "wk.graphml"
    assert [p.name for p in path.parent.iterdir()] == ["wk.graphml"]  # no temporary left

    back = nx.read_graphml(path)
    assert set(back.nodes) == set(g.nodes)
    assert back.nodes["c0"] == {
        "bipartite": 0,
        "kind": "category",
        "name": "apple",
        "index": 0,
        "superclass": "a",
    }
    assert back.nodes["f3"] == {"bipartite": 1, "kind": "feature", "name": "s0v3", "index": 3}
    assert {frozenset(e) for e in back.edges} == {frozenset(e) for e in g.edges}
    assert back.edges["c1", "f3"]["weight"] == 5.0
    assert back.graph["k"] == 2
    assert back.graph["rule"] == "category"

    # Rewriting is byte-identical.
    first = path.read_bytes()
    write_graphml(to_networkx(graph, names, feature_names, list("aabbba")), path)
    assert path.read_bytes() == first


@st.composite
def weight_matrices(draw: st.DrawFn) -> tuple[np.ndarray, int, str]:
    n_cat = draw(st.integers(1, 6))
    n_feat = draw(st.integers(1, 6))
    values = draw(st.lists(st.integers(-2, 3), min_size=n_cat * n_feat, max_size=n_cat * n_feat))
    rule = draw(st.sampled_from(["category", "feature"]))
    limit = n_feat if rule == "category" else n_cat
    k = draw(st.integers(1, limit))
    return np.array(values, dtype=float).reshape(n_cat, n_feat), k, rule


@settings(max_examples=150, deadline=None)
@given(weight_matrices())
def test_matches_reference_definition(case: tuple[np.ndarray, int, str]) -> None:
    w, k, rule = case
    graph = top_k_graph(w, k, rule=rule)  # type: ignore[arg-type]
    assert set(edges(graph)) == reference_edges(w, k, rule)
    assert edges(graph) == sorted(edges(graph))
    assert (graph.weight > 0).all()
    counts = two_neighbours(graph, multiplicity=True)
    members = [{f for c, f in edges(graph) if c == i} for i in range(w.shape[0])]
    for i in range(w.shape[0]):
        for j in range(w.shape[0]):
            assert counts[i, j] == (0 if i == j else len(members[i] & members[j]))
