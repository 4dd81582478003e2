"""The entropy view: the tables of :func:`semprobe.entropy.entropy_report` for one model.

Computed live from the cached logits at the chosen temperatures (cached per model and taus), or
read from the report a study wrote (``<model>/entropy/``); either way the same tables: the
histogram of H over every (sample, simplex) pair, per-simplex means, a summary per tau, and the
mean entropy per class and per superclass.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from semprobe.app import compute, data
from semprobe.app.page import keep_valid, shown_errors
from semprobe.entropy import EntropyReport
from semprobe.plots import entropy_histogram_figure, ranked_entropy_figure

SOURCES = {"report": "precomputed report (entropy/)", "live": "live from the logits"}


def show(model: data.ModelData, tau: float) -> None:
    """The source and temperature choice, then the report's figures and tables."""
    st.header("Entropy of the simplices")
    if not model.has_sem:
        st.info(f"{model.key} is a baseline without a SEM layer.")
        return
    saved = None
    with shown_errors(f"{model.key}: entropy report"):
        saved = data.saved_entropy_report(model.run_path, model.stamp, model.name)
    # A precomputed report (written by a study) is shown first: it costs nothing to open.
    sources = (["report"] if saved is not None else []) + ["live"]
    keep_valid("entropy_source", sources)
    source = st.radio(
        "Source", sources, horizontal=True, key="entropy_source", format_func=SOURCES.__getitem__
    )
    if source == "report" and saved is not None:
        shown = ", ".join(f"{t:g}" for t in saved.meta.get("taus", []))
        st.caption(f"Precomputed at tau = {shown}")
        report = saved
    else:
        taus = _choose_taus(model, tau)
        if not taus:
            st.info("Choose at least one temperature.")
            return
        report = data.entropy_at(model.run_path, model.stamp, model.name, tuple(sorted(taus)))
    _tables(report, model.vocab)


def _choose_taus(model: data.ModelData, tau: float) -> list[float]:
    grid = compute.tau_grid([model.tau, tau])
    default = sorted({compute.nearest(grid, t) for t in (0.1, model.tau, 1.0, tau)})
    keep_valid("entropy_taus", grid)
    return st.multiselect(
        "Temperatures", grid, default=default, key="entropy_taus", format_func=lambda t: f"{t:g}"
    )


def by_tau(table: pd.DataFrame, index: str) -> pd.DataFrame:
    """Mean entropy with one row per ``index`` value and one ``tau=...`` column per tau."""
    wide = table.pivot_table(index=index, columns="tau", values="mean")
    wide.columns = [f"tau={t:g}" for t in wide.columns]
    return wide


def _tables(report: EntropyReport, vocab: int) -> None:
    left, right = st.columns(2)
    left.plotly_chart(entropy_histogram_figure(report.histogram, vocab))
    right.plotly_chart(ranked_entropy_figure(report.per_simplex))
    st.subheader("Summary per tau")
    st.dataframe(report.summary, hide_index=True)
    if len(report.per_class):
        st.subheader("Mean entropy per class")
        st.dataframe(by_tau(report.per_class, "class"), height=320)
    if len(report.per_superclass):
        st.subheader("Mean entropy per superclass")
        st.dataframe(by_tau(report.per_superclass, "superclass"), height=320)
