"""The semprobe dashboard: browse the simplices, graphs, relevance and entropy of SEM runs.

Run it with ``semprobe dashboard RUN_DIR...`` or ``streamlit run app/dashboard.py -- RUN_DIR...``;
run directories also come from ``$SEMPROBE_RUNS`` (``os.pathsep``-separated) and from the
sidebar's "Open a run directory" box. Each view is a module of :mod:`semprobe.app.views`; what
they share (opening runs, the sidebar, error display) is :mod:`semprobe.app.page`.

A damaged run directory or model shows an error and leaves the rest of the app working.
"""

from __future__ import annotations

import streamlit as st

# Absolute imports: Streamlit runs this file as a script, outside its package.
from semprobe.app import data
from semprobe.app.page import VIEWS, open_runs, shown_errors, sidebar
from semprobe.app.views import (
    compare,
    entropy,
    graph,
    knn,
    linear,
    relevance,
    robustness,
    runs,
    search,
    simplices,
    transfer,
)
from semprobe.rundir import Run

PROTOCOL_VIEWS = {
    "kNN": knn.show,
    "Linear protocol": linear.show,
    "Robustness": robustness.show,
    "Transfer": transfer.show,
}


def main() -> None:
    """Build the page for the current session."""
    st.set_page_config(page_title="semprobe dashboard", layout="wide")
    paths = data.requested_runs() + list(st.session_state.get("extra_runs", []))
    opened = open_runs(list(dict.fromkeys(paths)))
    models: dict[str, data.ModelData] = {}
    run_of: dict[str, Run] = {}
    for item in opened:
        for model in item.models:
            assert item.run is not None
            models[model.key] = model
            run_of[model.key] = item.run
    chosen = sidebar(opened, models)
    view = st.session_state.get("view") or VIEWS[0]
    tau = float(st.session_state["tau"])
    if view == "Runs":
        runs.show(opened)
    elif view == "Relevance":
        relevance.show(models)
    elif view == "Compare":
        compare.show(models, run_of, tau)
    elif view in PROTOCOL_VIEWS:
        PROTOCOL_VIEWS[view](opened)
    elif chosen is None:
        st.header(view)
        st.info("No model to show: open a run directory (see the sidebar).")
    else:
        with shown_errors(chosen.key):
            if view == "Simplices":
                simplices.show(chosen, run_of[chosen.key], tau)
            elif view == "Search":
                search.show(chosen, run_of[chosen.key])
            elif view == "Graph":
                graph.show(chosen, run_of[chosen.key])
            elif view == "Entropy":
                entropy.show(chosen, tau)


main()
