"""The kNN view: weighted-kNN accuracy per representation and (k, T), for every opened run."""

from __future__ import annotations

import streamlit as st

from semprobe.app.page import OpenedRun, shown_errors
from semprobe.app.views.protocol_tables import none_found, runs_with
from semprobe.protocols.figures import knn_figure
from semprobe.protocols.reports import report


def show(opened: list[OpenedRun]) -> None:
    """A table (top-1 per representation and convention) and a bar chart per run."""
    st.header("kNN accuracy")
    found = runs_with(opened, "knn")
    if not found:
        none_found("knn", "knn")
        return
    metric = st.radio("Metric", ["top1", "top5"], horizontal=True, key="knn_metric")
    for item, tables in found:
        with shown_errors(f"{item.label}: kNN"):
            st.subheader(item.label)
            tidy = tables["knn"]
            st.caption(
                f"metric: {', '.join(map(str, tidy['metric'].unique()))} · "
                f"{int(tidy['n_train'].iloc[0])} training and {int(tidy['n_test'].iloc[0])} test "
                "images · top-1 table below"
            )
            st.dataframe(report("knn", tables).headline, hide_index=True, key=f"knn-{item.label}")
            st.plotly_chart(knn_figure(tidy, metric), key=f"knn-figure-{item.label}")
            with st.expander("Every row (knn.csv)"):
                st.dataframe(tidy, hide_index=True)
