"""Plotly figures of every analysis, and writing them as self-contained HTML (PNG if possible).

HTML files reference a ``plotly.min.js`` written once beside them, so a run directory opens
offline and stays small. Static PNG export needs kaleido and a Chrome/Chromium; when either is
missing :func:`write_figure` says so in its return value and writes only the HTML.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from semprobe.atomic import atomic_path, write_text

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def relevance_curve_figure(
    curves: dict[str, pd.DataFrame], superclasses: str | None = None
) -> go.Figure:
    """Relevance mean vs K for several models, each with its null band (mean +- 2 std).

    ``superclasses`` names the grouping in the title when it is not the only one.
    """
    fig = go.Figure()
    for i, (name, curve) in enumerate(curves.items()):
        colour = _colour(i)
        upper = curve["null_mean"] + 2 * curve["null_std"]
        lower = curve["null_mean"] - 2 * curve["null_std"]
        fig.add_trace(
            go.Scatter(
                x=list(curve["k"]) + list(curve["k"])[::-1],
                y=list(upper) + list(lower)[::-1],
                fill="toself",
                fillcolor=_rgba(colour, 0.12),
                line={"width": 0},
                hoverinfo="skip",
                name=f"{name}: null +-2 sd",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=curve["k"],
                y=curve["mean"],
                mode="lines+markers",
                name=name,
                line={"color": colour},
            )
        )
    fig.update_layout(
        title="Superclass relevance of the feature-category graph W_K"
        + (f" ({superclasses} superclasses)" if superclasses else ""),
        xaxis_title="K (features per category)",
        yaxis_title="relevance (mean over categories)",
        template="plotly_white",
    )
    return fig


def entropy_histogram_figure(histogram: pd.DataFrame, vocab: int | None = None) -> go.Figure:
    """Histogram of per-simplex entropy over all (sample, simplex) pairs, one trace per tau."""
    fig = go.Figure()
    for i, (tau, rows) in enumerate(histogram.groupby("tau", sort=True)):
        total = rows["count"].sum()
        centres = (rows["bin_left"] + rows["bin_right"]) / 2
        fig.add_trace(
            go.Bar(
                x=centres,
                y=rows["count"] / max(total, 1),
                name=f"tau={tau:g}",
                marker_color=_colour(i),
                opacity=0.6,
            )
        )
    fig.update_layout(
        barmode="overlay",
        title="Entropy of the simplices",
        xaxis_title="H (nats)" + (f"; ln V = {__import__('math').log(vocab):.3f}" if vocab else ""),
        yaxis_title="fraction of (sample, simplex) pairs",
        template="plotly_white",
    )
    return fig


def accuracy_vs_tau_figure(sweep: pd.DataFrame) -> go.Figure:
    """Probe accuracy of f_SEM(tau) against tau, with the baselines as horizontal lines."""
    fig = go.Figure()
    for i, (model, rows) in enumerate(sweep.groupby("model", sort=False)):
        colour = _colour(i)
        sem = rows[rows["representation"] == "sem"].sort_values("tau")
        if len(sem):
            fig.add_trace(
                go.Scatter(
                    x=sem["tau"],
                    y=sem["top1"],
                    mode="lines+markers",
                    name=f"{model}: f_SEM(tau)",
                    line={"color": colour},
                )
            )
        for dash, rep in (("dash", "backbone"), ("dot", "logits")):
            base = rows[rows["representation"] == rep]
            if len(base):
                fig.add_hline(
                    y=float(base["top1"].iloc[0]),
                    line_dash=dash,
                    line_color=colour,
                    annotation_text=f"{model}: {rep}",
                )
    fig.update_xaxes(type="log")
    fig.update_layout(
        title="Linear-probe accuracy vs SEM temperature",
        xaxis_title="tau",
        yaxis_title="test top-1 accuracy",
        template="plotly_white",
    )
    return fig


def ranked_entropy_figure(per_simplex: pd.DataFrame) -> go.Figure:
    """Mean entropy of each simplex, sorted, one line per tau."""
    fig = go.Figure()
    for i, (tau, rows) in enumerate(per_simplex.groupby("tau", sort=True)):
        ranked = rows["mean"].sort_values().to_numpy()
        fig.add_trace(
            go.Scatter(y=ranked, mode="lines", name=f"tau={tau:g}", line={"color": _colour(i)})
        )
    fig.update_layout(
        title="Per-simplex mean entropy, ranked",
        xaxis_title="simplex (rank)",
        yaxis_title="mean H (nats)",
        template="plotly_white",
    )
    return fig


def write_figure(fig: go.Figure, path: str | Path, png: bool = True) -> str:
    """Write ``fig`` as ``path`` (.html) and, if possible, a PNG beside it.

    Returns
    -------
    str
        ``"html+png"``, or ``"html (no PNG: <reason>)"``.
    """
    html_path = Path(path)
    js = html_path.parent / "plotly.min.js"
    if not js.exists():
        write_text(js, get_plotlyjs())
    write_text(html_path, fig.to_html(include_plotlyjs="directory", full_html=True))
    if not png:
        return "html"
    try:
        with atomic_path(html_path.with_suffix(".png"), suffix=".png") as tmp:
            fig.write_image(str(tmp), format="png", width=900, height=550)
    except Exception as exc:  # kaleido or a browser missing: HTML is still there
        return f"html (no PNG: {str(exc).strip().splitlines()[0][:120]})"
    return "html+png"
