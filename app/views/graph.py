"""The graph view: W_K at any K, categories coloured by superclass, a category's 2-neighbours."""

from __future__ import annotations

import numpy as np
import streamlit as st

from semprobe.app import compute, data, figures
from semprobe.app.page import keep_valid, number
from semprobe.graph import FeatureCategoryGraph
from semprobe.rundir import Run


def _k_bounds(model: data.ModelData, n_features: int) -> tuple[int, int]:
    """The K slider's default and maximum: the analysis's K and K_max, within the features."""
    k_max = int(model.setting("k_max", 50) or 50)
    rule = model.setting("rule", "category")
    limit = n_features if rule == "category" else 10**9
    default = int(model.setting("k", 10) or 10)
    top = max(1, min(limit, max(k_max, default)))
    return min(default, top), top


def _choose_k(model: data.ModelData, n_classes: int, n_features: int, rule: str) -> int:
    default, top = _k_bounds(model, n_features)
    if rule == "feature":
        top = min(top, n_classes)
    if "k" in st.session_state and st.session_state["k"] > top:
        st.session_state["k"] = top
    if "k" not in st.session_state:
        st.session_state["k"] = min(default, top)
    controls, _ = st.columns([2, 3])
    return int(controls.slider("K (features per category)", 1, top, key="k", bind="query-params"))


def show(model: data.ModelData, run: Run) -> None:
    """W_K at the chosen K: its numbers, its drawing and one category's neighbourhood."""
    st.header("Feature-category graph W_K")
    probe = data.probe(model.run_path, model.stamp, model.name)
    n_classes, n_features = probe.coef.shape
    rule = str(model.setting("rule", "category"))
    k = _choose_k(model, n_classes, n_features, rule)
    graph = data.graph(model.run_path, model.stamp, model.name, k, rule)
    supers = data.superclasses(run)
    names = data.feature_names(model, n_features)
    scored = data.relevance_at_k(model.run_path, model.stamp, model.name, k, rule)
    cols = st.columns(4)
    cols[0].metric("Edges in W_K", graph.n_edges)
    cols[1].metric("Features used", int(np.count_nonzero(graph.feature_degree())))
    cols[2].metric("Relevance (mean)", number(scored.mean))
    cols[3].metric("Isolated categories", scored.n_isolated)
    st.caption(
        f"{model.key} · rule={rule} · recomputed from relevance/probe.npz; "
        f"C={n_classes} categories, F={n_features} features."
    )
    plot_col, side_col = st.columns([3, 2])
    with side_col:
        category = _neighbourhood(graph, run, supers, names)
    with plot_col:
        st.plotly_chart(
            figures.bipartite_figure(graph, run.class_names, supers, names, highlight=category)
        )


def _neighbourhood(
    graph: FeatureCategoryGraph, run: Run, supers: list[str], names: list[str]
) -> int:
    """The category picker, its 2-neighbours and its features; returns the category."""
    n_classes = graph.n_categories
    keep_valid("category", list(range(n_classes)))
    category = st.selectbox(
        "Category",
        list(range(n_classes)),
        format_func=lambda c: run.class_names[c],
        key="category",
        bind="query-params",
    )
    category = int(category or 0)
    neighbours = compute.neighbours_table(graph, category, run.class_names, supers)
    same = int(neighbours["same_superclass"].sum()) if len(neighbours) else 0
    st.subheader(f"2-neighbours of {run.class_names[category]}")
    st.markdown(
        f"Superclass **{supers[category]}** · {len(neighbours)} 2-neighbours, "
        f"{same} of them in the same superclass."
    )
    st.dataframe(neighbours, hide_index=True, height=300)
    st.caption("Its features in W_K")
    st.dataframe(compute.category_features(graph, category, names), hide_index=True, height=200)
    return category
