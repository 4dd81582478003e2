"""The linear-protocol view: test accuracy of probes trained at tau_train, evaluated at tau_eval."""

from __future__ import annotations

import streamlit as st

from semprobe.app.page import OpenedRun, keep_valid, shown_errors
from semprobe.app.views.protocol_tables import none_found, runs_with
from semprobe.protocols.figures import grid_heatmap_figure
from semprobe.protocols.linear_grid import heatmap_table


def show(opened: list[OpenedRun]) -> None:
    """Per run and model: the tau_train x tau_eval heat map, its table and the baselines."""
    st.header("Linear protocol: two temperatures")
    found = runs_with(opened, "linear_grid")
    if not found:
        none_found("linear_grid", "linear-grid")
        return
    metric = st.radio("Metric", ["top1", "top5"], horizontal=True, key="linear_metric")
    for item, tables in found:
        with shown_errors(f"{item.label}: linear protocol"):
            st.subheader(item.label)
            table = tables["linear_table"]
            models = list(dict.fromkeys(table["model"]))
            key = f"linear_model_{item.label}"
            keep_valid(key, models)
            model = st.selectbox("Model", models, key=key)
            if (table[table["model"] == model]["representation"] == "sem").any():
                st.plotly_chart(grid_heatmap_figure(table, model, metric), key=f"heat-{item.label}")
                st.dataframe(heatmap_table(table, model, metric), key=f"grid-{item.label}")
            base = table[(table["model"] == model) & (table["representation"] != "sem")]
            if len(base):
                st.caption("Baselines: backbone features and the pre-softmax embedding")
                columns = ["representation", "strength", "val_top1", "top1", "top5"]
                st.dataframe(base[columns], hide_index=True, key=f"base-{item.label}")
            grid = tables.get("linear_grid")
            if grid is not None:
                with st.expander("Every fit and evaluation (linear_grid.csv)"):
                    st.dataframe(grid[grid["model"] == model], hide_index=True)
