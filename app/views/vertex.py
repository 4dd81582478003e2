"""One vertex of a simplex in detail: examples across its activation range, its activation
histogram and the classes its probe weight votes for and against.

Feature dashboards show a feature's examples at every activation level, not only the top ones:
the top images say what fires the vertex most, the lower bands whether the same concept carries
on at weaker activations or the vertex is something else most of the time.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from semprobe.app import compute, data, figures
from semprobe.app.page import shown_errors
from semprobe.rundir import Run

EXAMPLES_PER_BAND = 6
HISTOGRAM_BINS = 20


def show(model: data.ModelData, run: Run, simplex: int, tau: float) -> None:
    """The vertex chosen here, of ``simplex`` at ``tau``."""
    st.subheader("Vertex in detail")
    if st.session_state.get("vertex", 0) >= model.vocab:
        st.session_state["vertex"] = 0
    vertex = int(st.selectbox("Vertex", range(model.vocab), key="vertex"))
    probs = data.simplex_probabilities(model.run_path, model.stamp, model.name, simplex, tau)
    activation = probs[:, vertex]
    labels = data.labels(model.run_path, model.stamp)
    bands = compute.quantile_examples(activation, EXAMPLES_PER_BAND)
    shown = np.concatenate([idx for _, idx in bands])
    uris = data.thumbnail_uris(model.run_path, model.stamp, shown.tolist())
    st.html(figures.VERTEX_CSS)
    at = 0
    for band, idx in bands:
        names = [run.class_names[labels[i]] for i in idx]
        st.html(
            figures.band_html(
                f"{band} of the test images by activation",
                uris[at : at + len(idx)],
                captions=[f"{activation[i]:.2f} {n}" for i, n in zip(idx, names, strict=True)],
                tooltips=[
                    f"test image {i}: {n}, activation {activation[i]:.3f}"
                    for i, n in zip(idx, names, strict=True)
                ],
            )
        )
        at += len(idx)
    hist_col, votes_col = st.columns(2)
    with hist_col:
        counts, edges = np.histogram(activation, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
        st.caption(f"Activation of vertex {vertex} over the {len(activation)} test images")
        st.vega_lite_chart(
            figures.activation_histogram_data(counts, edges), figures.activation_histogram_spec()
        )
    with votes_col, shown_errors(f"{model.key}: probe weights"):
        _votes(model, run, simplex, vertex)


def _votes(model: data.ModelData, run: Run, simplex: int, vertex: int) -> None:
    """The classes the probe weight of this vertex pushes up and down, with superclasses."""
    if not model.sem_features:
        st.caption("The probe of this run reads the backbone, not the SEM output: no votes.")
        return
    probe = data.probe(model.run_path, model.stamp, model.name)
    votes = compute.vertex_votes(probe.coef, simplex * model.vocab + vertex, run.class_names, top=5)
    supers = dict(zip(run.class_names, data.superclasses(run), strict=True))
    votes["superclass"] = [supers[c] for c in votes["class"]]
    st.caption(
        "Classes this vertex votes for (positive probe weight) and against (negative); "
        "weights in standard deviations of the feature"
    )
    st.vega_lite_chart(votes, figures.votes_spec(), key="vertex-votes")
    st.dataframe(votes, hide_index=True, key="vertex-votes-table")
