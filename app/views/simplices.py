"""The simplex browser: one simplex of a SEM model at any tau.

Its vertices' top test images, class profiles and entropy; the SEM softmax is re-applied to the
cached logits of that simplex only, so a simplex switch stays cheap whatever L is.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import streamlit as st

from semprobe.app import compute, data, figures
from semprobe.app.page import number
from semprobe.rundir import Run

IMAGES_PER_VERTEX = 8


def _choose_simplex(model: data.ModelData, tau: float) -> tuple[int, pd.DataFrame | None]:
    """The order and index/rank inputs; returns the simplex and the ranking table shown."""
    n = model.num_simplices
    for key, top in (("simplex", n - 1), ("rank", n)):
        # A number input refuses a stored value above its new maximum after a model switch.
        if key in st.session_state and st.session_state[key] > top:
            st.session_state[key] = top
    left, right = st.columns([2, 3])
    by = left.selectbox("Order simplices by", compute.ORDERS, key="order")
    if by == "index":
        simplex = int(
            right.number_input(
                "Simplex (index)", 0, n - 1, step=1, key="simplex", bind="query-params"
            )
        )
        return simplex, None
    scores = data.simplex_scores(model.run_path, model.stamp, model.name)
    entropy = None
    if by.startswith("entropy"):
        entropy = data.simplex_entropy_means(model.run_path, model.stamp, model.name, tau)
    order = compute.simplex_order(
        by, n, entropy=entropy, mass=scores["weight_mass"].to_numpy(), contribution=scores
    )
    rank = int(right.number_input(f"Rank (1 = first by {by})", 1, n, step=1, key="rank"))
    ranking = scores.iloc[order[:10]].copy()
    ranking.insert(0, "rank", np.arange(1, len(ranking) + 1))
    if entropy is not None:
        ranking["mean entropy"] = entropy[order[:10]]
    return int(order[rank - 1]), ranking


def show(model: data.ModelData, run: Run, tau: float) -> None:
    """The chosen simplex: its numbers, its entropy histogram and every vertex."""
    if not model.has_sem:
        st.info(f"{model.key} is a baseline without a SEM layer: it has no simplices.")
        return
    simplex, ranking = _choose_simplex(model, tau)
    view = data.simplex_view(
        model.run_path, model.stamp, model.name, simplex, tau, IMAGES_PER_VERTEX
    )
    concepts = data.table(model.run_path, model.stamp, model.name, "relevance/feature_concepts.csv")
    here = pd.DataFrame()
    if concepts is not None and "simplex" in concepts:
        here = concepts[concepts["simplex"] == simplex].set_index("vertex")

    st.header(f"Simplex {simplex}")
    st.caption(
        f"{model.key} · L={model.num_simplices}, V={model.vocab} · tau={tau:g} "
        f"(pre-training tau={model.tau:g})"
    )
    _metrics(model, view, simplex)
    hist_col, side_col = st.columns([3, 2])
    with hist_col:
        st.caption("Entropy of this simplex over the test images")
        st.vega_lite_chart(
            figures.entropy_histogram_data(view.hist_counts, view.hist_edges),
            figures.entropy_histogram_spec(float(view.hist_edges[-1])),
        )
    with side_col:
        if ranking is not None:
            st.caption("Top simplices in this order")
            st.dataframe(ranking, hide_index=True, height=240)
        elif len(here):
            st.caption("Concepts of the kept vertices (feature_concepts.csv)")
            st.dataframe(here[["concept", "categories", "coherent"]], height=240)
        else:
            st.caption("No vertex of this simplex is kept in W_K.")
    _vertices(model, run, view, here)


def _metrics(model: data.ModelData, view: compute.SimplexView, simplex: int) -> None:
    row = data.simplex_scores(model.run_path, model.stamp, model.name).iloc[simplex]
    cols = st.columns(5)
    cols[0].metric(
        "Mean entropy H (nats)",
        f"{view.mean_entropy:.4f}",
        help="Mean over the test images of the simplex's entropy at this tau.",
    )
    cols[1].metric("H / ln V", f"{view.normalised_entropy:.3f}")
    cols[2].metric(
        "Probe weight mass",
        number(float(row["weight_mass"])),
        help="Sum of |coef| over the simplex's V features and every class.",
    )
    cols[3].metric("Vertices kept in W_K", f"{int(row['n_vertices_kept'])}/{model.vocab}")
    cols[4].metric(
        "Coherent vertices",
        int(row["coherence"]),
        help="Kept vertices whose categories (two or more) share one superclass.",
    )


def _vertex_title(v: int, view: compute.SimplexView, here: pd.DataFrame) -> str:
    title = f"<b>Vertex {v}</b> · mean activation {view.vertex_means[v]:.3f}"
    if v not in here.index:
        return title + " · not kept in W_K"
    c = here.loc[v]
    tag = "coherent" if bool(c["coherent"]) else "mixed"
    return title + (
        f" · concept <b>{html.escape(str(c['concept']))}</b> ({tag}: "
        f"{html.escape(str(c['categories']).replace(';', ', '))})"
    )


def _vertices(
    model: data.ModelData, run: Run, view: compute.SimplexView, here: pd.DataFrame
) -> None:
    """Every vertex: its top test images and its top classes."""
    labels = data.labels(model.run_path, model.stamp)
    st.html(figures.VERTEX_CSS)
    top = view.top_images.shape[1]
    uris = data.thumbnail_uris(model.run_path, model.stamp, view.top_images.reshape(-1).tolist())
    for v in range(model.vocab):
        idx = view.top_images[v]
        names = [run.class_names[labels[i]] for i in idx]
        st.html(
            figures.vertex_html(
                _vertex_title(v, view, here),
                uris[v * top : (v + 1) * top],
                captions=[
                    f"{p:.2f} {name}" for p, name in zip(view.top_values[v], names, strict=True)
                ],
                tooltips=[
                    f"test image {i}: {name}, activation {p:.3f}"
                    for i, name, p in zip(idx, names, view.top_values[v], strict=True)
                ],
                bars=figures.class_bars(view.class_means[v], run.class_names),
            )
        )
