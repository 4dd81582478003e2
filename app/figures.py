"""Figures made only by the dashboard (the analyses' own figures come from semprobe.plots).

The simplex browser redraws V image grids and bar charts on every simplex switch, so those are
small HTML fragments (JPEG thumbnails inline, bars as boxes) and its histogram a plain Vega-Lite
specification: a plotly figure is validated trace by trace and costs about 10 ms, a list of
``st.image`` about 1 ms per image.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from semprobe.graph import FeatureCategoryGraph

_SUPERCLASS_PALETTE = (*qualitative.Dark24, *qualitative.Light24)


def superclass_colours(superclasses: Sequence[str]) -> dict[str, str]:
    """A colour per superclass, in order of first appearance."""
    colours: dict[str, str] = {}
    for name in superclasses:
        if name not in colours:
            colours[name] = _SUPERCLASS_PALETTE[len(colours) % len(_SUPERCLASS_PALETTE)]
    return colours


def class_bars(class_means: np.ndarray, class_names: Sequence[str], top: int = 5) -> pd.DataFrame:
    """The ``top`` classes of one vertex by mean activation, strongest first."""
    order = np.lexsort((np.arange(len(class_means)), -class_means))[:top]
    return pd.DataFrame(
        {
            "class": [class_names[c] for c in order],
            "mean activation": class_means[order],
        }
    )


VERTEX_CSS = """
<style>
.sp-vertex, .sp-band {border-top: 1px solid rgba(128,128,128,0.25); padding: 6px 0 4px 0;}
.sp-head {font-size: 0.95rem; margin-bottom: 4px;}
.sp-row {display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start;}
.sp-grid {display: flex; flex-wrap: wrap; gap: 6px;}
.sp-grid figure {margin: 0; width: 80px; text-align: center;}
.sp-grid img {width: 80px; height: 80px; image-rendering: pixelated; border-radius: 3px;}
.sp-grid figcaption {font-size: 0.7rem; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; color: #666;}
.sp-bars {min-width: 260px; flex: 1; font-size: 0.78rem;}
.sp-bars .title {color: #666; margin-bottom: 2px;}
.sp-bar {display: flex; align-items: center; gap: 6px; height: 18px;}
.sp-bar .name {width: 170px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;}
.sp-bar .track {flex: 1; background: rgba(128,128,128,0.15); height: 11px; border-radius: 2px;}
.sp-bar .fill {display: block; background: #1f77b4; height: 11px; border-radius: 2px;}
.sp-bar .value {width: 38px; text-align: right; font-variant-numeric: tabular-nums;}
</style>
"""


def image_data_uri(image: np.ndarray) -> str:
    """A small RGB uint8 image as a ``data:`` URI (shown upscaled by the browser).

    JPEG at quality 95: about ten times faster to encode than PNG here and half the size, which
    matters because a simplex switch sends V x 8 of them; the loss is invisible at this quality.
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=95)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image_grid(images: Sequence[str], captions: Sequence[str], tooltips: Sequence[str]) -> str:
    return "".join(
        f'<figure><img src="{uri}" alt="{html.escape(tip)}" title="{html.escape(tip)}">'
        f"<figcaption>{html.escape(cap)}</figcaption></figure>"
        for uri, cap, tip in zip(images, captions, tooltips, strict=True)
    )


def band_html(
    title: str, images: Sequence[str], captions: Sequence[str], tooltips: Sequence[str]
) -> str:
    """A row of example images under a title (every text escaped here)."""
    return (
        f'<div class="sp-band"><div class="sp-head">{html.escape(title)}</div>'
        f'<div class="sp-grid">{_image_grid(images, captions, tooltips)}</div></div>'
    )


def vertex_html(
    title: str,
    images: Sequence[str],
    captions: Sequence[str],
    tooltips: Sequence[str],
    bars: pd.DataFrame,
) -> str:
    """One vertex of the simplex browser: its top images and its top classes as a bar chart.

    Drawn as HTML (a few kB per vertex) because it is redrawn on every simplex switch; ``title``
    may hold ``<b>`` tags, every other text is escaped here.
    """
    figures = _image_grid(images, captions, tooltips)
    rows = "".join(
        f'<div class="sp-bar"><span class="name" title="{html.escape(str(name))}">'
        f"{html.escape(str(name))}</span>"
        f'<span class="track"><span class="fill" style="width:{100 * min(max(v, 0), 1):.1f}%">'
        f'</span></span><span class="value">{v:.2f}</span></div>'
        for name, v in zip(bars["class"], bars["mean activation"], strict=True)
    )
    return (
        f'<div class="sp-vertex"><div class="sp-head">{title}</div><div class="sp-row">'
        f'<div class="sp-grid">{figures}</div>'
        f'<div class="sp-bars"><div class="title">mean activation per class (top classes)</div>'
        f"{rows}</div></div></div>"
    )


def entropy_histogram_data(counts: np.ndarray, edges: np.ndarray) -> pd.DataFrame:
    """A histogram as a table: bin edges and fraction of samples."""
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({"H from": edges[:-1], "H to": edges[1:], "fraction": counts / total})


def activation_histogram_data(counts: np.ndarray, edges: np.ndarray) -> pd.DataFrame:
    """A histogram of activations as a table: bin edges and fraction of samples."""
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({"from": edges[:-1], "to": edges[1:], "fraction": counts / total})


def activation_histogram_spec(height: int = 220) -> dict[str, Any]:
    """Vega-Lite histogram of a vertex's activation on ``[0, 1]``."""
    return _histogram_spec(("from", "to"), 1.0, "activation (SEM output of the vertex)", height)


def votes_spec(height: int = 240) -> dict[str, Any]:
    """Vega-Lite signed horizontal bars: ``class`` by ``weight``, coloured by sign."""
    return {
        "height": height,
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "y": {"field": "class", "type": "nominal", "sort": None, "title": None},
            "x": {"field": "weight", "type": "quantitative", "title": "probe weight"},
            "color": {
                "condition": {"test": "datum.weight > 0", "value": "#2a7ab0"},
                "value": "#c0392b",
            },
        },
    }


def entropy_histogram_spec(log_v: float, height: int = 220) -> dict[str, Any]:
    """Vega-Lite histogram of per-sample entropy on ``[0, ln V]``."""
    return _histogram_spec(
        ("H from", "H to"), log_v, f"entropy H (nats; ln V = {log_v:.3f})", height
    )


def _histogram_spec(edges: tuple[str, str], top: float, title: str, height: int) -> dict[str, Any]:
    """Bars of ``fraction`` between the columns ``edges`` on ``[0, top]``."""
    return {
        "height": height,
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "x": {
                "field": edges[0],
                "type": "quantitative",
                "bin": {"binned": True},
                "scale": {"domain": [0, top]},
                "title": title,
            },
            "x2": {"field": edges[1]},
            "y": {
                "field": "fraction",
                "type": "quantitative",
                "stack": None,
                "title": "fraction of test images",
            },
        },
    }


def _layout(
    graph: FeatureCategoryGraph, class_names: Sequence[str], superclasses: Sequence[str]
) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Category order and heights; the features with an edge and the height of every feature.

    A feature sits at the mean height of its categories, so features whose categories share a
    superclass land beside that superclass's block.
    """
    n_cat = graph.n_categories
    cat_order = sorted(range(n_cat), key=lambda c: (superclasses[c], class_names[c]))
    cat_y = np.empty(n_cat)
    cat_y[cat_order] = np.arange(n_cat)[::-1]
    feats = np.unique(graph.feature)
    sums = np.bincount(graph.feature, weights=cat_y[graph.category], minlength=graph.n_features)
    raw_y = sums[feats] / np.maximum(graph.feature_degree()[feats], 1)
    # Spread features over the same height as the categories, keeping their order.
    rank = np.argsort(np.argsort(raw_y, kind="stable"), kind="stable")
    feat_y = np.zeros(graph.n_features)
    if len(feats) > 1:
        feat_y[feats] = rank * (n_cat - 1) / (len(feats) - 1)
    elif len(feats) == 1:
        feat_y[feats] = (n_cat - 1) / 2
    return cat_order, cat_y, feats, feat_y


def _edges_trace(
    graph: FeatureCategoryGraph,
    cat_y: np.ndarray,
    feat_y: np.ndarray,
    keep: set[int] | None,
    line: dict[str, Any],
) -> go.Scatter | go.Scattergl:
    """Line segments (category -> feature, None-separated) of the edges to kept features."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for c, f in zip(graph.category.tolist(), graph.feature.tolist(), strict=True):
        if keep is None or f in keep:
            xs.extend((0.0, 1.0, None))
            ys.extend((cat_y[c], feat_y[f], None))
    # Every edge at once in WebGL (there can be thousands); the highlighted few on top.
    trace = go.Scattergl if keep is None else go.Scatter
    return trace(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False, line=line)


def _category_traces(
    cat_order: list[int], cat_y: np.ndarray, class_names: Sequence[str], superclasses: Sequence[str]
) -> list[go.Scatter]:
    """One marker trace per superclass (its legend entry), in order of appearance."""
    n_cat = len(cat_order)
    traces = []
    for name, colour in superclass_colours([superclasses[c] for c in cat_order]).items():
        members = [c for c in cat_order if superclasses[c] == name]
        traces.append(
            go.Scatter(
                x=[0.0] * len(members),
                y=cat_y[members],
                mode="markers+text" if n_cat <= 40 else "markers",
                text=[class_names[c] for c in members],
                textposition="middle left",
                hovertext=[f"{class_names[c]} ({name})" for c in members],
                hoverinfo="text",
                marker={"color": colour, "size": 9, "line": {"width": 1, "color": "white"}},
                name=name,
                legendgroup=name,
            )
        )
    return traces


def _feature_trace(
    graph: FeatureCategoryGraph,
    feats: np.ndarray,
    feat_y: np.ndarray,
    feature_names: Sequence[str],
) -> go.Scatter:
    """The features with an edge, as squares sized by their number of categories."""
    degree = graph.feature_degree()
    return go.Scatter(
        x=[1.0] * len(feats),
        y=feat_y[feats],
        mode="markers",
        hovertext=[f"{feature_names[f]}: {degree[f]} categories" for f in feats],
        hoverinfo="text",
        marker={"color": "#444", "size": 4 + 2 * np.sqrt(degree[feats]), "symbol": "square"},
        name="features",
    )


def bipartite_figure(
    graph: FeatureCategoryGraph,
    class_names: Sequence[str],
    superclasses: Sequence[str],
    feature_names: Sequence[str],
    highlight: int | None = None,
    height: int = 700,
    legend: bool = True,
) -> go.Figure:
    """W_K drawn as two columns: categories (left, grouped by superclass) and features (right).

    A feature sits at the mean height of its categories. The edges of ``highlight`` (a
    category) and of its 2-neighbours are drawn on top.
    """
    n_cat = graph.n_categories
    cat_order, cat_y, feats, feat_y = _layout(graph, class_names, superclasses)
    fig = go.Figure()
    fig.add_trace(
        _edges_trace(graph, cat_y, feat_y, None, {"color": "rgba(120,120,120,0.25)", "width": 1})
    )
    if highlight is not None:
        # Every edge of the highlighted category's features: its 2-neighbours' links too.
        mine = set(graph.feature[graph.category == highlight].tolist())
        fig.add_trace(
            _edges_trace(graph, cat_y, feat_y, mine, {"color": "rgba(214,39,40,0.9)", "width": 2})
        )
    fig.add_traces(_category_traces(cat_order, cat_y, class_names, superclasses))
    fig.add_trace(_feature_trace(graph, feats, feat_y, feature_names))
    if highlight is not None:
        ring = {"size": 16, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#d62728"}}
        fig.add_trace(
            go.Scatter(
                x=[0.0],
                y=[cat_y[highlight]],
                mode="markers",
                hoverinfo="skip",
                showlegend=False,
                marker=ring,
            )
        )
    fig.update_layout(
        height=height,
        template="plotly_white",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title=f"W_K at K={graph.k}: {graph.n_edges} edges, {len(feats)} features used",
        xaxis={"visible": False, "range": [-0.6 if n_cat <= 40 else -0.1, 1.1]},
        yaxis={"visible": False},
        legend={"title": "superclass", "font": {"size": 10}},
        showlegend=legend,
    )
    return fig
