"""Plotly figures of every analysis, written as HTML and as static PNG and SVG images.

HTML files reference a ``plotly.min.js`` written once beside them, so a run directory opens
offline and stays small. Static images go through plotly's own exporter
(:func:`plotly.io.write_images`, i.e. kaleido driving a headless Chrome or Chromium), all figures
of a run in one browser session; the system Chromium (``/usr/bin/chromium``) is used where it is
installed. Where kaleido or a browser is missing, :func:`write_figures` writes the HTML only and
returns a one-line note saying why.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from semprobe.atomic import atomic_path, write_text

#: The system Chromium that static export uses where it is installed (Debian's ``chromium``).
SYSTEM_CHROMIUM = Path("/usr/bin/chromium")
STATIC_FORMATS = ("png", "svg")
FIGURE_SIZE = (900, 550)

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def interval_bars(name: str, intervals: pd.DataFrame) -> go.Scatter:
    """Bootstrap intervals (``k, estimate, low, high`` rows) as asymmetric error bars."""
    rows = intervals.sort_values("k")
    return go.Scatter(
        x=rows["k"],
        y=rows["estimate"],
        mode="markers",
        marker={"size": 4, "color": "rgba(0,0,0,0.5)"},
        error_y={
            "type": "data",
            "symmetric": False,
            "array": (rows["high"] - rows["estimate"]).tolist(),
            "arrayminus": (rows["estimate"] - rows["low"]).tolist(),
        },
        name=f"{name}: bootstrap interval",
    )


def relevance_curve_figure(
    curves: dict[str, pd.DataFrame],
    superclasses: str | None = None,
    intervals: dict[str, pd.DataFrame] | None = None,
) -> go.Figure:
    """Relevance mean vs K for several models, each with its null band (mean +- 2 std).

    ``superclasses`` names the grouping in the title when it is not the only one;
    ``intervals`` (model name -> ``k, estimate, low, high``) adds bootstrap error bars.
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
    for name, rows in (intervals or {}).items():
        fig.add_trace(interval_bars(name, rows))
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
        xaxis_title="H (nats)" + (f"; ln V = {math.log(vocab):.3f}" if vocab else ""),
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


def browser_path() -> Path | None:
    """The Chrome/Chromium kaleido will drive: ``$BROWSER_PATH``, the system Chromium, or one on
    ``PATH`` (``chromium``, ``chromium-browser``, ``google-chrome``); None if there is none."""
    given = os.environ.get("BROWSER_PATH")
    if given and Path(given).is_file():
        return Path(given)
    if SYSTEM_CHROMIUM.is_file():
        return SYSTEM_CHROMIUM
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def static_export_problem() -> str | None:
    """Why static images cannot be written here (one line), or None if they can."""
    if importlib.util.find_spec("kaleido") is None:
        return "kaleido is not installed (pip install kaleido)"
    if browser_path() is None:
        return "no Chrome or Chromium found (install chromium, e.g. apt-get install chromium)"
    return None


@contextlib.contextmanager
def _browser_env(browser: Path) -> Iterator[None]:
    """Point kaleido (choreographer) at ``browser`` for the block."""
    before = os.environ.get("BROWSER_PATH")
    os.environ["BROWSER_PATH"] = str(browser)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("BROWSER_PATH", None)
        else:
            os.environ["BROWSER_PATH"] = before


def write_html(fig: go.Figure, path: str | Path) -> Path:
    """Write ``fig`` as HTML (``plotly.min.js`` once beside it) atomically; returns the path."""
    html_path = Path(path)
    js = html_path.parent / "plotly.min.js"
    if not js.exists():
        write_text(js, get_plotlyjs())
    write_text(html_path, fig.to_html(include_plotlyjs="directory", full_html=True))
    return html_path


def write_figures(
    figures: Mapping[str, go.Figure],
    folder: str | Path,
    formats: Sequence[str] = STATIC_FORMATS,
) -> str | None:
    """Write every figure as ``folder/<name>.html`` and, where possible, ``<name>.png`` and
    ``<name>.svg`` (each file atomically; all images in one browser session).

    Parameters
    ----------
    figures:
        Name -> figure.
    folder:
        Where the files go.
    formats:
        Static formats (plotly's names: ``png``, ``svg``, ``pdf``, ...); empty for HTML only.

    Returns
    -------
    str or None
        None when every file was written; otherwise a one-line note saying why the static
        images were not (the HTML files are always written).

    Examples
    --------
    >>> import tempfile, plotly.graph_objects as go
    >>> folder = Path(tempfile.mkdtemp())
    >>> note = write_figures({"bars": go.Figure(go.Bar(y=[1, 2]))}, folder, formats=())
    >>> note is None, sorted(p.name for p in folder.iterdir())
    (True, ['bars.html', 'plotly.min.js'])
    """
    out = Path(folder)
    for name, fig in figures.items():
        write_html(fig, out / f"{name}.html")
    if not figures or not formats:
        return None
    problem = static_export_problem()
    if problem is not None:
        return f"static figures (PNG, SVG) not written: {problem}; the HTML figures are"
    browser = browser_path()
    assert browser is not None  # checked by static_export_problem
    jobs = [(fig, out / f"{name}.{fmt}", fmt) for name, fig in figures.items() for fmt in formats]
    import plotly.io as pio

    try:
        with contextlib.ExitStack() as stack, _browser_env(browser):
            tmps = [
                stack.enter_context(atomic_path(path, suffix=f".{fmt}")) for _, path, fmt in jobs
            ]
            width, height = FIGURE_SIZE
            pio.write_images(
                [fig for fig, _, _ in jobs],
                tmps,
                format=[fmt for _, _, fmt in jobs],
                width=width,
                height=height,
            )
            # On a loaded machine kaleido can time out on an image and leave no file: each
            # missing one is drawn again once, alone, before the export is given up.
            for (fig, path, fmt), tmp in zip(jobs, tmps, strict=True):
                if not _written(tmp):
                    pio.write_image(fig, tmp, format=fmt, width=width, height=height)
                if not _written(tmp):
                    raise RuntimeError(f"kaleido wrote no {fmt.upper()} for {path.name}")
    except Exception as exc:  # a browser that does not start: the HTML figures are there
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return f"static figures (PNG, SVG) not written: {reason}; the HTML figures are"
    return None


def _written(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def write_figure(fig: go.Figure, path: str | Path, png: bool = True) -> str:
    """Write ``fig`` as ``path`` (.html) and, if ``png`` and possible, PNG and SVG beside it.

    Returns
    -------
    str
        ``"html+png+svg"``, ``"html"``, or ``"html (<why the images are missing>)"``.
    """
    html_path = Path(path)
    note = write_figures({html_path.stem: fig}, html_path.parent, STATIC_FORMATS if png else ())
    if not png:
        return "html"
    return "html+png+svg" if note is None else f"html ({note})"
