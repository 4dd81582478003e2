"""The robustness view: the paper's Table 2 layout and ImageNet-C per corruption."""

from __future__ import annotations

import streamlit as st

from semprobe.app.page import OpenedRun, shown_errors
from semprobe.app.views.protocol_tables import none_found, runs_with
from semprobe.protocols.figures import robustness_figure
from semprobe.protocols.robustness import corruption_table, robustness_table


def show(opened: list[OpenedRun]) -> None:
    """Per run: the table (a row per model and label set), its bar chart, the corruptions."""
    st.header("Robustness")
    found = runs_with(opened, "robustness")
    if not found:
        none_found("robustness", "robustness")
        return
    metric = st.radio(
        "Metric", ["top1", "top5", "mean_per_class"], horizontal=True, key="robust_metric"
    )
    for item, tables in found:
        with shown_errors(f"{item.label}: robustness"):
            st.subheader(item.label)
            tidy = tables["robustness"]
            wide = robustness_table(tidy, metric)
            st.dataframe(wide.reset_index(), hide_index=True, key=f"rob-{item.label}")
            st.plotly_chart(robustness_figure(wide), key=f"rob-figure-{item.label}")
            left = tidy[tidy["left_out"] > 0].drop_duplicates("dataset")
            for row in left.itertuples():
                st.caption(
                    f"{row.eval}: {row.left_out} images of classes the probe lacks were left out"
                )
            corruptions = corruption_table(tidy, metric)
            if len(corruptions):
                st.caption("ImageNet-C per corruption and severity")
                st.dataframe(corruptions, hide_index=True, key=f"corr-{item.label}")
