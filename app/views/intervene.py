"""Interventions on the shown simplex: set it to a vertex and read the probe's answer.

Relevance says which features the probe leans on; an intervention is causal evidence: one
simplex of one test image (or of every test image of a class) is set to a chosen vertex and the
probe's class probabilities are read before and after (:func:`semprobe.interventions.intervene`).
Beside it, every vertex's mean effect on each class for the same images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from semprobe.app import data
from semprobe.app.page import shown_errors
from semprobe.interventions import VALUES, intervene, vertex_effects
from semprobe.rundir import Run

SCOPES = ("one test image", "every test image of a class")
CLASSES_SHOWN = 10


def show(model: data.ModelData, run: Run, simplex: int) -> None:
    """The intervention panel for ``simplex``."""
    st.subheader("Intervene on this simplex")
    with shown_errors(f"{model.key}: intervention"):
        probe = data.linear_probe(model)
        labels = data.labels(model.run_path, model.stamp)
        logits = data.logits(model.run_path, model.stamp, model.name)
        scope_col, what_col, vertex_col, value_col = st.columns([2, 2, 1, 1])
        scope = scope_col.radio("Edit", SCOPES, key="intervene_scope")
        if scope == SCOPES[0]:
            image = int(
                what_col.number_input("Test image", 0, len(labels) - 1, key="intervene_image")
            )
            rows = np.array([image])
            who = f"test image {image} ({run.class_names[labels[image]]})"
        else:
            present = sorted(set(labels.tolist()))
            chosen = what_col.selectbox(
                "Class", present, key="intervene_class", format_func=lambda c: run.class_names[c]
            )
            rows = np.flatnonzero(labels == chosen)
            who = f"the {len(rows)} test images of {run.class_names[chosen]}"
        if st.session_state.get("intervene_vertex", 0) >= model.vocab:
            st.session_state["intervene_vertex"] = 0
        vertex = int(
            vertex_col.selectbox("Set to vertex", range(model.vocab), key="intervene_vertex")
        )
        value = str(value_col.radio("as", VALUES, key="intervene_value"))
        # Mean profiles over the whole test split: points the model actually produces.
        profiles = data.vertex_profiles(model.run_path, model.stamp, model.name, simplex, probe.tau)
        edited = np.asarray(logits[rows], dtype=np.float64)
        edit = intervene(
            edited, probe, model.num_simplices, model.vocab, simplex, vertex, value, profiles
        )
        table = _probabilities(edit.before.mean(axis=0), edit.after.mean(axis=0), run)
        st.caption(
            f"Simplex {simplex} of {who} set to vertex {vertex} ({value}); mean class "
            f"probabilities of the probe (tau={probe.tau:g}), the {CLASSES_SHOWN} most changed"
        )
        st.dataframe(table, hide_index=True, key="intervene_table")
        effects = _effects(model, simplex, tuple(rows.tolist()), value)
        st.caption(f"Mean change of each class's probability per vertex, over {who}")
        st.plotly_chart(_effects_figure(effects, run.class_names), key="intervene_effects")


@st.cache_data(show_spinner="Intervening with every vertex...", max_entries=64)
def _effects(model: data.ModelData, simplex: int, rows: tuple[int, ...], value: str) -> np.ndarray:
    """:func:`vertex_effects` of ``rows`` (V edits of the probe's full input: kept per choice)."""
    probe = data.linear_probe(model)
    logits = data.logits(model.run_path, model.stamp, model.name)
    profiles = data.vertex_profiles(model.run_path, model.stamp, model.name, simplex, probe.tau)
    edited = np.asarray(logits[list(rows)], dtype=np.float64)
    return vertex_effects(edited, probe, model.num_simplices, model.vocab, simplex, value, profiles)


def _probabilities(before: np.ndarray, after: np.ndarray, run: Run) -> pd.DataFrame:
    """The classes whose probability changes most, largest change first (ties by class)."""
    change = after - before
    order = np.lexsort((np.arange(len(change)), -np.abs(change)))[:CLASSES_SHOWN]
    return pd.DataFrame(
        {
            "class": [run.class_names[c] for c in order],
            "before": before[order],
            "after": after[order],
            "change": change[order],
        }
    )


def _effects_figure(effects: np.ndarray, class_names: list[str]) -> go.Figure:
    """A vertex x class heat map of mean probability changes, centred on 0."""
    bound = float(np.nanmax(np.abs(effects))) if np.isfinite(effects).any() else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=effects.tolist(),  # V x C: small, and plain numbers in the page
            x=class_names,
            y=[f"vertex {v}" for v in range(effects.shape[0])],
            colorscale="RdBu",
            zmid=0.0,
            zmin=-bound,
            zmax=bound,
            colorbar={"title": "change"},
        )
    )
    fig.update_layout(height=120 + 22 * effects.shape[0], margin={"t": 20, "b": 40})
    return fig
