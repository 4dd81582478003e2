"""The simplex browser: one simplex of a SEM model at any tau.

Its vertices' top test images, class profiles and entropy; the SEM softmax is re-applied to the
cached logits of that simplex only, so a simplex switch stays cheap whatever L is. Beside them,
the mutual information of every simplex's vertex assignment with the class and the superclass
(:mod:`semprobe.simplex_information`, computed once per run and kept in the run directory) and
the simplices whose assignments share the most with the one shown.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import streamlit as st

from semprobe.app import compute, data, figures
from semprobe.app.page import number
from semprobe.app.views import intervene, vertex
from semprobe.errors import SemprobeError
from semprobe.rundir import Run
from semprobe.simplex_information import run_assignments, run_information, simplex_agreement

IMAGES_PER_VERTEX = 8
MOST_ALIKE = 10
# Above this many simplices the most-alike list (one pass over N x L assignments, ~0.6 s at
# L = 5000 on two busy cores) is shown on request, so that a simplex switch stays fast.
ALIKE_BY_DEFAULT = 1000
MI_ORDER = "mutual information with the class (excess)"
ORDERS = (*compute.ORDERS, MI_ORDER)


@st.cache_data(show_spinner="Computing the mutual information of every simplex...", max_entries=64)
def information(run_path: str, stamp: str, name: str) -> pd.DataFrame:
    """The run's ``simplex_information.csv`` (computed and kept on first use)."""
    run, _ = data.open_run(run_path)
    return run_information(run.model(name))


@st.cache_resource(show_spinner=False, max_entries=16)
def _assignments(run_path: str, stamp: str, name: str) -> np.ndarray:
    run, _ = data.open_run(run_path)
    return run_assignments(run.model(name))


@st.cache_data(show_spinner=False, max_entries=256)
def most_alike(run_path: str, stamp: str, name: str, simplex: int) -> pd.DataFrame:
    """The :data:`MOST_ALIKE` simplices whose vertex assignments share most with ``simplex``."""
    model = data.model_data(run_path, stamp, "", name)
    alike = simplex_agreement(_assignments(run_path, stamp, name), model.vocab, simplex)
    return alike.head(MOST_ALIKE).reset_index(drop=True)


def information_ranking(table: pd.DataFrame) -> pd.DataFrame:
    """Every simplex, highest excess MI with the class first (ties by index), with its rank."""
    order = np.lexsort((table["simplex"].to_numpy(), -table["mi_class_excess"].to_numpy()))
    ranking = table.iloc[order].reset_index(drop=True)
    ranking.insert(0, "rank", np.arange(1, len(ranking) + 1))
    return ranking


def _choose_simplex(model: data.ModelData, tau: float) -> tuple[int, pd.DataFrame | None]:
    """The order and index/rank inputs; returns the simplex and the ranking table shown."""
    n = model.num_simplices
    for key, top in (("simplex", n - 1), ("rank", n)):
        # A number input refuses a stored value above its new maximum after a model switch.
        if key in st.session_state and st.session_state[key] > top:
            st.session_state[key] = top
    left, right = st.columns([2, 3])
    by = left.selectbox("Order simplices by", ORDERS, key="order")
    if by == "index":
        simplex = int(
            right.number_input(
                "Simplex (index)", 0, n - 1, step=1, key="simplex", bind="query-params"
            )
        )
        return simplex, None
    scores = data.simplex_scores(model.run_path, model.stamp, model.name)
    entropy = None
    if by == MI_ORDER:
        table = information(model.run_path, model.stamp, model.name)
        order = information_ranking(table)["simplex"].to_numpy()
    else:
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
    _information(model, simplex)
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
    vertex.show(model, run, simplex, tau)
    intervene.show(model, run, simplex)
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


def _information(model: data.ModelData, simplex: int) -> None:
    """The simplex's MI with the labels, the ranking of all simplices and the most alike."""
    try:
        table = information(model.run_path, model.stamp, model.name)
    except SemprobeError as exc:  # the rest of the view does not need these
        st.warning(f"No mutual information for {model.key}: {exc}")
        return
    row = table.iloc[simplex]
    cols = st.columns(4)
    for col, (label, key) in zip(
        cols,
        (
            ("MI with the class (nats)", "mi_class"),
            ("Class MI over baseline", "mi_class_excess"),
            ("MI with the superclass (nats)", "mi_superclass"),
            ("Superclass MI over baseline", "mi_superclass_excess"),
        ),
        strict=True,
    ):
        col.metric(
            label,
            number(float(row[key]), 4),
            help="Of the vertex assignment (argmax vertex per test image, the same at every "
            "tau); the baseline is the mean over label permutations (simplex_information.csv).",
        )
    rank_col, alike_col = st.columns([3, 2])
    with rank_col:
        st.caption(
            f"Mutual information of all {len(table)} simplices with the labels, nats "
            "(click a column to sort)"
        )
        st.dataframe(information_ranking(table), hide_index=True, height=240, key="mi_ranking")
    with alike_col:
        if st.toggle(
            "Simplices most alike this one (MI of the vertex assignments)",
            value=model.num_simplices <= ALIKE_BY_DEFAULT,
            key="mi_alike_on",
        ):
            alike = most_alike(model.run_path, model.stamp, model.name, simplex)
            st.dataframe(alike, hide_index=True, height=240, key="mi_alike")


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
