"""Feature-category graphs W_K built from a linear probe.

Lavoie et al., "Simplicial Embeddings in Self-Supervised Learning and Downstream Classification",
ICLR 2023 (arXiv 2204.00616), Section 5: a linear probe trained on (SEM) features gives a weight
matrix ``W`` of shape ``C x F`` (categories x features). The paper keeps, for each category, the
``K`` features with the largest weights and studies the resulting bipartite graph ``W_K`` between
features and categories. Two categories are *2-neighbours* when they share at least one feature in
``W_K``; the semantic relevance of ``W_K`` (see :mod:`semprobe.relevance`) asks how often
2-neighbours belong to the same superclass.

Choices made here, all deterministic:

* Only strictly positive weights create edges: a feature with weight ``<= 0`` for a category is
  evidence *against* it, so a category whose top-K contains non-positive weights gets fewer than
  ``K`` edges (possibly none).
* Ties are broken by the lower index (a stable sort on the negated weights).
* Edges are stored sorted by (category, feature), so equal inputs give byte-identical outputs.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from semprobe.atomic import atomic_path
from semprobe.errors import SemprobeError

Rule = Literal["category", "feature"]
RULES: tuple[str, ...] = ("category", "feature")

__all__ = [
    "RULES",
    "FeatureCategoryGraph",
    "Rule",
    "check_k",
    "check_weights",
    "sem_feature_name",
    "to_networkx",
    "top_k_graph",
    "two_neighbours",
    "write_graphml",
]


def frozen_copy(array: NDArray[Any]) -> NDArray[Any]:
    # Read-only copies: a frozen dataclass should not be mutable through its arrays.
    out = np.array(array, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class FeatureCategoryGraph:
    """The bipartite graph ``W_K`` between categories and features.

    Edges are parallel arrays sorted by (category, feature); every weight is strictly positive.
    Instances are immutable (the arrays are read-only copies) and compare by identity.

    Attributes
    ----------
    n_categories:
        C, the number of categories (rows of ``W``); isolated categories are kept.
    n_features:
        F, the number of features (columns of ``W``).
    k:
        The K the graph was built with.
    rule:
        ``"category"`` (each category keeps its top-K features) or ``"feature"`` (each feature
        keeps its top-K categories).
    category, feature:
        int64 arrays of the edge end points.
    weight:
        float64 array of the probe weight ``W[category, feature]`` of each edge.
    """

    n_categories: int
    n_features: int
    k: int
    rule: str
    category: NDArray[np.int64]
    feature: NDArray[np.int64]
    weight: NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise SemprobeError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.n_categories < 1 or self.n_features < 1:
            raise SemprobeError(
                f"a graph needs at least one category and one feature, got "
                f"{self.n_categories} x {self.n_features}"
            )
        cat = np.asarray(self.category, dtype=np.int64).reshape(-1)
        feat = np.asarray(self.feature, dtype=np.int64).reshape(-1)
        wt = np.asarray(self.weight, dtype=np.float64).reshape(-1)
        if not (cat.shape == feat.shape == wt.shape):
            raise SemprobeError(
                f"edge arrays differ in length: {cat.size} categories, {feat.size} features, "
                f"{wt.size} weights"
            )
        if cat.size and (cat.min() < 0 or cat.max() >= self.n_categories):
            raise SemprobeError(f"edge category index out of range [0, {self.n_categories})")
        if feat.size and (feat.min() < 0 or feat.max() >= self.n_features):
            raise SemprobeError(f"edge feature index out of range [0, {self.n_features})")
        order = np.lexsort((feat, cat))
        object.__setattr__(self, "category", frozen_copy(cat[order]))
        object.__setattr__(self, "feature", frozen_copy(feat[order]))
        object.__setattr__(self, "weight", frozen_copy(wt[order]))

    @property
    def n_edges(self) -> int:
        """Number of edges in ``W_K``."""
        return int(self.category.size)

    def incidence(self) -> sp.csr_matrix:
        """Return the category-feature incidence matrix ``B``.

        Returns
        -------
        scipy.sparse.csr_matrix
            ``C x F`` int64 matrix with ``B[c, f] = 1`` for every edge (c, f) of ``W_K``.
        """
        data = np.ones(self.n_edges, dtype=np.int64)
        return sp.csr_matrix(
            (data, (self.category, self.feature)), shape=(self.n_categories, self.n_features)
        )

    def category_degree(self) -> NDArray[np.int64]:
        """Number of features joined to each category (length C)."""
        return np.bincount(self.category, minlength=self.n_categories).astype(np.int64)

    def feature_degree(self) -> NDArray[np.int64]:
        """Number of categories joined to each feature (length F)."""
        return np.bincount(self.feature, minlength=self.n_features).astype(np.int64)


def check_weights(weights: ArrayLike) -> NDArray[np.float64]:
    """Validate a probe weight matrix and return it as a float64 array.

    Parameters
    ----------
    weights:
        ``C x F`` array-like (numpy array, nested lists, CPU tensor).

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(C, F)``.

    Raises
    ------
    SemprobeError
        If it is not a non-empty, finite, real 2-D array.
    """
    try:
        array = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise SemprobeError("W must be a real C x F array of probe weights") from None
    if array.ndim != 2:
        raise SemprobeError(f"W must be 2-D (classes x features), got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise SemprobeError(f"W must be non-empty, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise SemprobeError("W contains NaN or infinite weights")
    return array


def check_k(k: object, limit: int, what: str) -> int:
    """Validate K against the number of candidates it selects from.

    Parameters
    ----------
    k:
        The requested K; an integer (``bool`` is refused).
    limit:
        How many candidates exist (features for the category rule, categories for the feature
        rule).
    what:
        Name of the candidates, for the message (``"features"`` / ``"categories"``).

    Returns
    -------
    int
        ``k`` as a Python int.

    Raises
    ------
    SemprobeError
        If ``k`` is not an integer, is below 1 or exceeds ``limit``.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise SemprobeError(f"K must be an integer, got {k!r}")
    value = int(k)
    if value < 1:
        raise SemprobeError(f"K must be at least 1, got K={value}")
    if value > limit:
        raise SemprobeError(f"K={value} is larger than the number of {what} ({limit})")
    return value


def _top_k_rows(matrix: NDArray[np.float64], k: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Row and column indices of each row's top-k strictly positive entries (ties: lower column)."""
    # A stable sort of -w keeps equal weights in index order, so ties go to the lower index.
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(matrix, order, axis=1)
    keep = top > 0
    rows = np.broadcast_to(np.arange(matrix.shape[0])[:, None], order.shape)
    return rows[keep].astype(np.int64), order[keep].astype(np.int64)


def top_k_graph(weights: ArrayLike, k: int, rule: Rule = "category") -> FeatureCategoryGraph:
    """Build ``W_K`` from a linear probe's weights.

    Parameters
    ----------
    weights:
        Probe weights ``W``, shape ``C x F`` (classes x features).
    k:
        K >= 1.
    rule:
        ``"category"`` (the paper's rule, default): each category is joined to the K features with
        the largest positive weight for it. ``"feature"`` (transposed): each feature is joined to
        the K categories with the largest positive weight for it; only features with a nonzero
        weight are considered, which the positivity requirement already implies (an all-zero or
        all-negative feature column gets no edge). In both rules ties go to the lower index and
        weights ``<= 0`` never make an edge, so a node may get fewer than K edges.

    Returns
    -------
    FeatureCategoryGraph
        The graph, with edges sorted by (category, feature).

    Raises
    ------
    SemprobeError
        If ``W`` is not a finite 2-D array, ``rule`` is unknown, ``K < 1``, or K exceeds the
        number of features (category rule) or categories (feature rule).
    """
    array = check_weights(weights)
    n_categories, n_features = array.shape
    if rule == "category":
        kk = check_k(k, n_features, "features")
        cat, feat = _top_k_rows(array, kk)
    elif rule == "feature":
        kk = check_k(k, n_categories, "categories")
        feat, cat = _top_k_rows(array.T, kk)
    else:
        raise SemprobeError(f"rule must be one of {RULES}, got {rule!r}")
    return FeatureCategoryGraph(
        n_categories=n_categories,
        n_features=n_features,
        k=kk,
        rule=rule,
        category=cat,
        feature=feat,
        weight=array[cat, feat],
    )


def two_neighbours(graph: FeatureCategoryGraph, multiplicity: bool = False) -> NDArray[np.int64]:
    """Count the features each pair of categories shares in ``W_K``.

    With ``B`` the ``C x F`` incidence matrix, ``B @ B.T`` counts shared features; its diagonal
    (a category with itself) is zeroed because ``N(c_i)`` contains only *other* categories.

    Parameters
    ----------
    graph:
        ``W_K`` from :func:`top_k_graph`.
    multiplicity:
        ``False`` (default): return 0/1, i.e. ``N(c_i)`` as a set. ``True``: return the number of
        shared features, so a category sharing two features counts twice.

    Returns
    -------
    numpy.ndarray
        Symmetric ``C x C`` int64 matrix with a zero diagonal; row ``i`` describes ``N(c_i)``.
    """
    incidence = graph.incidence()
    shared = np.asarray((incidence @ incidence.T).toarray(), dtype=np.int64)
    np.fill_diagonal(shared, 0)
    if not multiplicity:
        shared = (shared > 0).astype(np.int64)
    return shared


def sem_feature_name(index: int, vocab: int) -> str:
    """Name a SEM feature ``s{simplex}v{vertex}``.

    SEM features are laid out simplex-major: feature ``index = simplex * V + vertex``.

    Parameters
    ----------
    index:
        Feature index, >= 0.
    vocab:
        V, the number of vertices per simplex, >= 1.

    Returns
    -------
    str
        For example ``sem_feature_name(13, 5) == "s2v3"``.
    """
    for name, value in (("index", index), ("vocab", vocab)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise SemprobeError(f"{name} must be an integer, got {value!r}")
    if vocab < 1:
        raise SemprobeError(f"vocab (V) must be at least 1, got {vocab}")
    if index < 0:
        raise SemprobeError(f"feature index must be non-negative, got {index}")
    simplex, vertex = divmod(int(index), int(vocab))
    return f"s{simplex}v{vertex}"


def _names(names: Sequence[object] | None, count: int, what: str, default: str) -> list[str]:
    if names is None:
        return [f"{default}{i}" for i in range(count)]
    if isinstance(names, str | bytes):
        raise SemprobeError(f"{what} names must be a sequence of names, not a single string")
    out = [str(name) for name in names]
    if len(out) != count:
        raise SemprobeError(f"got {len(out)} {what} names for {count} {what}s")
    return out


def _superclass_labels(
    superclass_of: Sequence[object] | Mapping[str, object], category_names: list[str]
) -> list[str]:
    if isinstance(superclass_of, Mapping):
        missing = [name for name in category_names if name not in superclass_of]
        if missing:
            raise SemprobeError(f"no superclass given for categories {missing[:5]}")
        return [str(superclass_of[name]) for name in category_names]
    if isinstance(superclass_of, str | bytes):
        raise SemprobeError("superclass_of must be a sequence or mapping, not a single string")
    labels = [str(label) for label in superclass_of]
    if len(labels) != len(category_names):
        raise SemprobeError(
            f"got {len(labels)} superclass labels for {len(category_names)} categories"
        )
    return labels


def to_networkx(
    graph: FeatureCategoryGraph,
    category_names: Sequence[object],
    feature_names: Sequence[object] | None = None,
    superclass_of: Sequence[object] | Mapping[str, object] | None = None,
    include_isolated_features: bool = False,
) -> nx.Graph:
    """Convert ``W_K`` to an undirected, bipartite :class:`networkx.Graph`.

    Node ids are ``"c{i}"`` for category ``i`` and ``"f{j}"`` for feature ``j``, so that names
    may repeat or collide without merging nodes. Every category is a node (isolated ones too,
    because they matter for relevance); features are nodes only when they have an edge, unless
    ``include_isolated_features``. All attribute values are plain ``str``/``int``/``float`` so the
    graph writes to GraphML unchanged.

    Parameters
    ----------
    graph:
        ``W_K`` from :func:`top_k_graph`.
    category_names:
        One name per category (converted with ``str``).
    feature_names:
        One name per feature; defaults to ``f{index}`` (see :func:`sem_feature_name` for SEM).
    superclass_of:
        Superclass labels, either aligned with the categories or a mapping from category name to
        label; stored as ``str`` in the ``superclass`` attribute of category nodes.
    include_isolated_features:
        Also add features without any edge.

    Returns
    -------
    networkx.Graph
        Node attributes: ``bipartite`` (0 category, 1 feature), ``kind`` (``"category"`` /
        ``"feature"``), ``name``, ``index`` and, for categories, ``superclass`` when given.
        Edge attribute: ``weight`` (the probe weight). Graph attributes: ``k``, ``rule``,
        ``n_categories``, ``n_features``.
    """
    cat_names = _names(category_names, graph.n_categories, "category", "c")
    feat_names = _names(feature_names, graph.n_features, "feature", "f")
    supers = None if superclass_of is None else _superclass_labels(superclass_of, cat_names)

    out = nx.Graph(
        k=int(graph.k),
        rule=str(graph.rule),
        n_categories=int(graph.n_categories),
        n_features=int(graph.n_features),
    )
    for i, name in enumerate(cat_names):
        attrs: dict[str, Any] = {"bipartite": 0, "kind": "category", "name": name, "index": i}
        if supers is not None:
            attrs["superclass"] = supers[i]
        out.add_node(f"c{i}", **attrs)
    if include_isolated_features:
        features = range(graph.n_features)
    else:
        features = np.unique(graph.feature).tolist()
    for j in features:
        out.add_node(f"f{j}", bipartite=1, kind="feature", name=feat_names[j], index=int(j))
    for c, f, w in zip(
        graph.category.tolist(), graph.feature.tolist(), graph.weight.tolist(), strict=True
    ):
        out.add_edge(f"c{c}", f"f{f}", weight=float(w))
    return out


def write_graphml(graph_nx: nx.Graph, path: str | os.PathLike[str]) -> Path:
    """Write a graph to GraphML atomically.

    Parameters
    ----------
    graph_nx:
        Typically the output of :func:`to_networkx`.
    path:
        Destination file; its directory is created if needed.

    Returns
    -------
    pathlib.Path
        The destination path. A failed write leaves any previous file untouched.
    """
    destination = Path(path)
    with atomic_path(destination, suffix=".graphml") as tmp:
        nx.write_graphml(graph_nx, tmp)
    return destination
