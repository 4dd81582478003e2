"""A run directory as one self-contained HTML page: its main figures and tables, readable offline.

The page holds plotly.js once, inline, and every figure as a ``<div>`` drawn by it; tables are
HTML tables (pandas' ``to_html``, escaped). Nothing is fetched when the page opens: no script or
style sheet comes from a server, so the file can be mailed, archived or opened without a network.

Sections (``<section id=...>``): ``run`` (what made it), ``models`` (one row per model: probe and
relevance), ``relevance`` (the relevance-vs-K curves and the run's comparison table) and, where
the run has them, ``tau-sweep``; then per model ``model-<name>`` with, for SEM models,
``model-<name>-information`` (mutual information of every simplex with the class and superclass,
:mod:`semprobe.simplex_information`), ``model-<name>-entropy`` and ``model-<name>-concepts``.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from semprobe import __version__
from semprobe.atomic import atomic_path
from semprobe.errors import SemprobeError
from semprobe.plots import (
    accuracy_vs_tau_figure,
    entropy_histogram_figure,
    ranked_entropy_figure,
    relevance_curve_figure,
)
from semprobe.rundir import Run, RunModel
from semprobe.simplex_information import run_information

#: Rows of the per-model tables shown (the full tables stay in the run directory).
TOP_ROWS = 20

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
section.model { border-top: 2px solid #888; margin-top: 2em; }
pre { background: #f8f8f8; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
nav a { margin-right: 1em; }
"""


def _anchor(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, float_format=lambda x: f"{x:.4g}", na_rep="")


def _figure(fig: go.Figure, div_id: str) -> str:
    # plotly.js is in the page's head once; each figure only draws into its div.
    return fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False}
    )


def _section(anchor: str, title: str, body: str, level: int = 2, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return (
        f'<section id="{html.escape(anchor)}"{attr}>'
        f"<h{level}>{html.escape(title)}</h{level}>\n{body}\n</section>\n"
    )


def _spec(model: RunModel) -> dict[str, Any]:
    spec = model.info.get("spec")
    return spec if isinstance(spec, dict) else {}


def _models_table(run: Run) -> pd.DataFrame:
    rows = []
    for model in run.models:
        spec, summary = _spec(model), model.relevance_summary() or {}
        probe, rel = summary.get("probe") or {}, summary.get("relevance") or {}
        rows.append(
            {
                "model": model.name,
                "L": spec.get("num_simplices") or None,
                "V": spec.get("vocab") or None,
                "tau (pretraining)": spec.get("tau") if spec.get("num_simplices") else None,
                "probe features": summary.get("representation"),
                "top1": probe.get("top1"),
                "K": rel.get("k"),
                "relevance mean": rel.get("mean"),
                "null mean": rel.get("null_mean"),
                "z": rel.get("z"),
                "p": rel.get("p"),
            }
        )
    return pd.DataFrame(rows)


def _run_section(run: Run) -> str:
    meta = run.meta
    facts = pd.DataFrame(
        {
            "": ["run", "kind", "created by", "models", "classes", "test images"],
            " ": [
                run.name,
                str(meta.get("kind", "?")),
                str(meta.get("created_by", "?")),
                ", ".join(m.name for m in run.models),
                str(len(run.class_names)),
                str(len(run.labels())),
            ],
        }
    )
    params = json.dumps(meta.get("parameters") or {}, indent=2, sort_keys=True, default=str)
    return _section(
        "run", f"Run {run.name}", _table(facts) + f"<pre>{html.escape(params)}</pre>"
    ) + _section("models", "Models", _table(_models_table(run)))


def _run_tables(run: Run) -> str:
    """The relevance curves of every model, the comparison table and the tau sweeps."""
    curves = {m.name: c for m in run.models if (c := m.table("relevance/curve.csv")) is not None}
    body = _figure(relevance_curve_figure(curves), "fig-relevance") if curves else ""
    comparison = run.path_of("comparison.csv", must_exist=False)
    if comparison.is_file():
        try:
            body += _table(pd.read_csv(comparison))
        except (OSError, ValueError) as exc:  # pandas' parser errors are ValueErrors
            raise SemprobeError(f"cannot read {comparison}: {exc}") from None
    out = _section("relevance", "Superclass relevance", body or "<p>No relevance analysis.</p>")
    sweeps = [s for m in run.models if (s := m.table("tau_sweep.csv")) is not None]
    if sweeps:
        sweep = pd.concat(sweeps, ignore_index=True)
        out += _section(
            "tau-sweep",
            "Probe accuracy vs SEM temperature",
            _figure(accuracy_vs_tau_figure(sweep), "fig-tau-sweep") + _table(sweep),
        )
    return out


def information_figure(table: pd.DataFrame) -> go.Figure:
    """Excess mutual information of every simplex with the class and superclass, ranked."""
    fig = go.Figure()
    for column, name in (("mi_class_excess", "class"), ("mi_superclass_excess", "superclass")):
        values = table[column].to_numpy(dtype=np.float64)
        if np.isfinite(values).any():
            fig.add_trace(go.Scatter(y=np.sort(values)[::-1], mode="lines", name=name))
    fig.update_layout(
        title="Mutual information of each simplex's vertex assignment, over its permutation "
        "baseline",
        xaxis_title="simplex (rank)",
        yaxis_title="MI - baseline (nats)",
        template="plotly_white",
    )
    return fig


def _entropy(model: RunModel, tau: float) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Histogram and per-simplex tables: the run's saved report, else computed at ``tau``."""
    from semprobe.entropy import EntropyReport, entropy_report

    folder = model.run.path_of(f"{model.name}/entropy", must_exist=False)
    if folder.is_dir():
        report = EntropyReport.from_dir(folder)
        return report.histogram, report.per_simplex, "the run's entropy report"
    spec, logits = _spec(model), model.logits()
    assert logits is not None
    report = entropy_report(logits, int(spec["num_simplices"]), int(spec["vocab"]), [tau])
    return report.histogram, report.per_simplex, f"tau = {tau:g}"


def _model_section(model: RunModel) -> str:
    spec, summary = _spec(model), model.relevance_summary() or {}
    anchor = f"model-{_anchor(model.name)}"
    if not spec.get("num_simplices") or model.logits() is None:
        body = "<p>A model without a SEM layer (or without its test logits): no simplices.</p>"
        return _section(anchor, f"Model {model.name}", body, cls="model")
    tau = float(summary.get("tau") or spec.get("tau") or 1.0)
    table = run_information(model)
    ranked = table.sort_values(["mi_class_excess", "simplex"], ascending=[False, True])
    body = _section(
        f"{anchor}-information",
        "Mutual information of the simplices with the labels (nats)",
        f"<p>Vertex assignment: argmax vertex per test image (the same at every tau). Top "
        f"{min(TOP_ROWS, len(table))} of {len(table)} by excess over the permutation baseline; "
        f"all in {html.escape(model.name)}/simplex_information.csv.</p>"
        + _figure(information_figure(table), f"fig-{anchor}-information")
        + _table(ranked.head(TOP_ROWS)),
        level=3,
    )
    histogram, per_simplex, where = _entropy(model, tau)
    body += _section(
        f"{anchor}-entropy",
        f"Entropy of the simplices ({where})",
        _figure(entropy_histogram_figure(histogram, int(spec["vocab"])), f"fig-{anchor}-hist")
        + _figure(ranked_entropy_figure(per_simplex), f"fig-{anchor}-ranked"),
        level=3,
    )
    concepts = model.table("relevance/simplex_concepts.csv")
    body += _section(
        f"{anchor}-concepts",
        "Simplices with vertices kept in W_K, and their concepts",
        _table(concepts.head(TOP_ROWS)) if concepts is not None else "<p>No concept table.</p>",
        level=3,
    )
    return _section(anchor, f"Model {model.name}", body, cls="model")


def report_html(run: Run) -> str:
    """The whole page for ``run`` (see the module docstring for its sections)."""
    from plotly.offline import get_plotlyjs

    sections = _run_section(run) + _run_tables(run)
    sections += "".join(_model_section(model) for model in run.models)
    links = ["run", "models", "relevance"] + (["tau-sweep"] if 'id="tau-sweep"' in sections else [])
    links += [f"model-{_anchor(m.name)}" for m in run.models]
    nav = "".join(f'<a href="#{a}">{html.escape(a)}</a>' for a in links)
    title = html.escape(f"semprobe report: {run.name}")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{_STYLE}</style>\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n'
        f"<body><h1>{title}</h1><p>Written by semprobe {__version__}.</p><nav>{nav}</nav>\n"
        f"{sections}</body></html>\n"
    )


def check_report_destination(path: str | os.PathLike[str]) -> Path:
    """The report's path if it can be written there (checked before any work), else an error."""
    out = Path(path).absolute()
    if out.is_dir():
        raise SemprobeError(f"report destination {out} is a directory, not a file")
    if not out.parent.is_dir():
        raise SemprobeError(f"cannot write the report {out}: {out.parent} is not a directory")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise SemprobeError(f"cannot write the report {out}: {out.parent} is not writable")
    return out


def write_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write the report of the run at ``run_dir`` to ``out`` atomically; returns ``out``.

    Raises
    ------
    SemprobeError
        If ``run_dir`` is not a complete run, or ``out`` cannot be written.
    """
    destination = check_report_destination(out)
    run = Run(run_dir)
    page = report_html(run)
    with atomic_path(destination, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return destination
