"""The runs view: every opened run and model, with its probe accuracy and relevance summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from semprobe.app import data
from semprobe.app.page import OpenedRun, shown_errors, summary_row
from semprobe.plots import accuracy_vs_tau_figure
from semprobe.rundir import Run


def show(opened: list[OpenedRun]) -> None:
    """The table of every model, then one expander per run."""
    st.header("Runs")
    if not opened:
        st.info(
            "Open a run directory: `semprobe dashboard RUN_DIR`, or type its path in the sidebar."
        )
        return
    rows = [summary_row(m) for item in opened for m in item.models]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    for item in opened:
        if item.error:
            st.error(f"{item.path}: {item.error}")
            continue
        assert item.run is not None
        with st.expander(f"{item.label}: {shown_path(item.run.root)}", expanded=len(opened) == 1):
            _run_details(item, item.run)


def shown_path(path: str | Path) -> str:
    """A run's folder as its user would type it: relative to the working directory when inside.

    Examples
    --------
    >>> shown_path(Path.cwd() / "runs" / "demo")
    'runs/demo'
    """
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _run_details(item: OpenedRun, run: Run) -> None:
    meta = run.meta
    params = meta.get("parameters") or {}
    cols = st.columns(4)
    cols[0].metric("Kind", str(meta.get("kind", "?")))
    cols[1].metric("Models", len(item.models))
    cols[2].metric("Classes", len(run.class_names))
    with shown_errors(f"{item.label}: test labels"):
        n = len(data.labels(str(run.root), item.stamp))
        cols[3].metric("Test images", n)
    taus = params.get("taus")
    st.caption(
        f"dataset: {params.get('dataset', '?')} · created by {meta.get('created_by', '?')}"
        + (f" · study taus: {', '.join(f'{t:g}' for t in taus)}" if taus else "")
    )
    for message in item.model_errors:
        st.error(message)
    with shown_errors(f"{item.label}: thumbnails"):
        data.thumbnails(str(run.root), item.stamp)
    if params:
        st.json(params, expanded=False)
    sweeps = []
    for model in item.models:
        with shown_errors(f"{model.key}: tau_sweep.csv"):
            sweep = data.table(model.run_path, model.stamp, model.name, "tau_sweep.csv")
            if sweep is not None:
                sweeps.append(sweep)
    if sweeps:
        st.plotly_chart(
            accuracy_vs_tau_figure(pd.concat(sweeps, ignore_index=True)),
            key=f"sweep-{item.label}",
        )
