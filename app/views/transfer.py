"""The transfer view: the paper's Table 3 layout, a row per model and a column per dataset."""

from __future__ import annotations

import streamlit as st

from semprobe.app.page import OpenedRun, shown_errors
from semprobe.app.views.protocol_tables import none_found, runs_with
from semprobe.protocols.figures import transfer_figure
from semprobe.protocols.transfer import transfer_table

METRICS = {
    "value": "Kornblith et al.'s metric per dataset",
    "top1": "top-1 accuracy",
    "mean_per_class": "mean per-class accuracy",
}


def show(opened: list[OpenedRun]) -> None:
    """Per run: the table and its bar chart, with the metric chosen."""
    st.header("Transfer")
    found = runs_with(opened, "transfer")
    if not found:
        none_found("transfer", "transfer")
        return
    metric = st.radio(
        "Metric", list(METRICS), horizontal=True, key="transfer_metric", format_func=METRICS.get
    )
    for item, tables in found:
        with shown_errors(f"{item.label}: transfer"):
            st.subheader(item.label)
            tidy = tables["transfer"]
            wide = transfer_table(tidy, metric)
            st.dataframe(wide.reset_index(), hide_index=True, key=f"tr-{item.label}")
            st.plotly_chart(transfer_figure(wide), key=f"tr-figure-{item.label}")
            with st.expander("Every row (transfer.csv)"):
                st.dataframe(tidy, hide_index=True)
