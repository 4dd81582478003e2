"""Plotly figures of the evaluation protocols (a run's HTML files and the dashboard's views)."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from semprobe.plots import PALETTE


def _tau_text(tau: float) -> str:
    return "" if pd.isna(tau) else f" tau={tau:g}"


def representation_label(representation: str, tau: float) -> str:
    """``sem tau=0.1``, ``backbone``, ``logits``."""
    return f"{representation}{_tau_text(tau)}"


def grid_heatmap_figure(table: pd.DataFrame, model: str, metric: str = "top1") -> go.Figure:
    """tau_train (rows) x tau_eval (columns) test accuracy of one model's chosen probes, with the
    baselines in the title."""
    from semprobe.protocols.linear_grid import heatmap_table

    wide = heatmap_table(table, model, metric)
    fig = go.Figure(
        go.Heatmap(
            z=wide.to_numpy(),
            x=[f"{c}" for c in wide.columns],
            y=[f"{r}" for r in wide.index],
            colorscale="Viridis",
            text=[[("" if math.isnan(v) else f"{v:.3f}") for v in row] for row in wide.to_numpy()],
            texttemplate="%{text}",
            colorbar={"title": f"test {metric}"},
        )
    )
    rows = table[(table["model"] == model) & (table["representation"] != "sem")]
    base = ", ".join(f"{r.representation} {getattr(r, metric):.3f}" for r in rows.itertuples())
    fig.update_layout(
        title=f"{model}: probe trained at tau_train, evaluated at tau_eval"
        + (f" (baselines: {base})" if base else ""),
        xaxis_title="tau_eval",
        yaxis_title="tau_train",
        xaxis={"type": "category"},
        yaxis={"type": "category"},
        template="plotly_white",
    )
    return fig


def knn_figure(tidy: pd.DataFrame, metric: str = "top1") -> go.Figure:
    """kNN accuracy per representation, a bar per (model, k, temperature)."""
    fig = go.Figure()
    tidy = tidy.assign(
        x=[
            representation_label(r, t)
            for r, t in zip(tidy["representation"], tidy["tau"], strict=True)
        ]
    )
    groups = tidy.groupby(["model", "k", "temperature"], sort=False, dropna=False)
    for i, ((model, k, temperature), rows) in enumerate(groups):
        t = "" if pd.isna(temperature) else f", T={temperature:g}"
        fig.add_trace(
            go.Bar(
                x=rows["x"],
                y=rows[metric],
                name=f"{model}: k={k}{t}",
                marker_color=PALETTE[i % len(PALETTE)],
            )
        )
    fig.update_layout(
        barmode="group",
        title="Weighted kNN accuracy",
        xaxis_title="representation",
        yaxis_title=f"test {metric}",
        template="plotly_white",
    )
    return fig


def robustness_figure(wide: pd.DataFrame) -> go.Figure:
    """The Table 2 layout as grouped bars: a group per evaluation, a bar per (model, labels)."""
    fig = go.Figure()
    for i, ((model, labels), row) in enumerate(wide.iterrows()):
        fig.add_trace(
            go.Bar(
                x=list(wide.columns),
                y=row.to_numpy(),
                name=f"{model} ({labels} labels)",
                marker_color=PALETTE[i % len(PALETTE)],
            )
        )
    fig.update_layout(
        barmode="group",
        title="Robustness: top-1 accuracy of the probe (ImageNet-C: mean over corruptions)",
        xaxis_title="evaluation set",
        yaxis_title="top-1 accuracy",
        template="plotly_white",
    )
    return fig


def transfer_figure(wide: pd.DataFrame) -> go.Figure:
    """The Table 3 layout as grouped bars: a group per dataset, a bar per model."""
    fig = go.Figure()
    for i, (model, row) in enumerate(wide.iterrows()):
        fig.add_trace(
            go.Bar(
                x=list(wide.columns),
                y=row.to_numpy(),
                name=str(model),
                marker_color=PALETTE[i % len(PALETTE)],
            )
        )
    fig.update_layout(
        barmode="group",
        title="Transfer: linear-probe accuracy per dataset (Kornblith et al.'s metric)",
        xaxis_title="dataset",
        yaxis_title="accuracy",
        template="plotly_white",
    )
    return fig
