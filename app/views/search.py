"""Search a SEM model's features: by class or superclass, by concept label, by test image.

* A class (or a superclass, its classes' mean) gives the simplices and vertices whose probe
  weights predict it most.
* A concept label (or a category name) gives the kept vertices whose W_K concept matches it.
* A test image gives its simplex states, ordered by their contribution to the probe's score of
  the class it predicts.

Each result names its simplex; the simplex browser opens it (``?view=Simplices&simplex=N``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from semprobe.app import compute, data
from semprobe.app.page import shown_errors
from semprobe.rundir import Run
from semprobe.sem import sem_softmax

MODES = ("class or superclass", "concept label", "test image")
FEATURES_SHOWN = 20
SIMPLICES_SHOWN = 30


def show(model: data.ModelData, run: Run) -> None:
    """The search view for ``model``."""
    st.header("Search")
    if not model.has_sem:
        st.info(f"{model.key} is a baseline without a SEM layer: it has no simplices to search.")
        return
    mode = st.radio("Search by", MODES, horizontal=True, key="search_by", bind="query-params")
    with shown_errors(f"{model.key}: search"):
        if mode == MODES[0]:
            _by_class(model, run)
        elif mode == MODES[1]:
            _by_concept(model)
        else:
            _by_image(model, run)


def _concepts(model: data.ModelData) -> pd.DataFrame:
    table = data.table(model.run_path, model.stamp, model.name, "relevance/feature_concepts.csv")
    if table is None or "simplex" not in table:
        return pd.DataFrame(columns=["simplex", "vertex", "concept", "categories", "coherent"])
    return table


def _by_class(model: data.ModelData, run: Run) -> None:
    if not model.sem_features:
        st.info("The probe of this run reads the backbone, not the SEM output.")
        return
    supers = data.superclasses(run)
    options = [f"class: {c}" for c in run.class_names]
    options += [f"superclass: {s}" for s in sorted(set(supers) - set(run.class_names))]
    choice = st.selectbox("Class or superclass", options, key="search_class")
    kind, name = choice.split(": ", 1)
    if kind == "class":
        classes = [run.class_names.index(name)]
    else:
        classes = [i for i, s in enumerate(supers) if s == name]
    coef = data.probe(model.run_path, model.stamp, model.name).coef
    found = compute.features_for_classes(coef, classes, model.vocab, FEATURES_SHOWN)
    concepts = _concepts(model).set_index(["simplex", "vertex"])
    found["concept"] = [
        concepts["concept"].get((s, v), "")
        for s, v in zip(found["simplex"], found["vertex"], strict=True)
    ]
    st.caption(
        f"The {len(found)} SEM features whose probe weight for {name}"
        + (f" (mean over its {len(classes)} classes)" if len(classes) > 1 else "")
        + " is largest; weights in standard deviations of the feature"
    )
    st.dataframe(found, hide_index=True, key="search_class_table")
    per_simplex = found.groupby("simplex")["weight"].sum().sort_values(ascending=False)
    st.caption("Their simplices, by summed weight: " + ", ".join(map(str, per_simplex.index[:10])))


def _by_concept(model: data.ModelData) -> None:
    text = st.text_input("Concept label or category", key="search_concept").strip().lower()
    concepts = _concepts(model)
    if not text:
        st.caption(f"{len(concepts)} vertices are kept in W_K; type a label to filter them.")
        return
    hit = concepts["concept"].astype(str).str.lower().str.contains(text, regex=False)
    hit |= concepts["categories"].astype(str).str.lower().str.contains(text, regex=False)
    found = concepts.loc[hit, ["simplex", "vertex", "concept", "categories", "coherent"]]
    st.caption(f"{len(found)} kept vertices whose concept or categories contain {text!r}")
    st.dataframe(found.reset_index(drop=True), hide_index=True, key="search_concept_table")


def _by_image(model: data.ModelData, run: Run) -> None:
    probe = data.linear_probe(model)
    labels = data.labels(model.run_path, model.stamp)
    image = int(st.number_input("Test image", 0, len(labels) - 1, key="search_image"))
    logits = data.logits(model.run_path, model.stamp, model.name)
    row = torch.from_numpy(np.asarray(logits[image : image + 1], dtype=np.float64))
    sem = sem_softmax(row, model.num_simplices, model.vocab, probe.tau).numpy()
    inputs = probe.inputs(sem)[0]
    scores = inputs @ np.asarray(probe.coef).T + probe.intercept
    predicted = int(np.argmax(scores))
    picture, text = st.columns([1, 4])
    picture.image(data.thumbnail_uris(model.run_path, model.stamp, [image])[0], width=96)
    text.markdown(
        f"Test image {image}: **{run.class_names[labels[image]]}**; the probe predicts "
        f"**{run.class_names[predicted]}** (score {scores[predicted]:.3f})"
    )
    table = compute.simplex_contributions(inputs, probe.coef[predicted], sem[0], model.vocab)
    st.caption(
        f"The {SIMPLICES_SHOWN} simplices that raise the score of {run.class_names[predicted]} "
        "most, with the image's vertex in each (contribution: the simplex's part of the score, "
        "relative to the training images' mean input)"
    )
    st.dataframe(table.head(SIMPLICES_SHOWN), hide_index=True, key="search_image_table")
