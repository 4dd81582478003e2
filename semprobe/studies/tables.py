"""A study's results as one tidy table and its plotly figures."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from semprobe.analysis import ModelResult
from semprobe.checkpoint import LoadedModel
from semprobe.entropy import EntropyReport
from semprobe.plots import (
    accuracy_vs_tau_figure,
    entropy_histogram_figure,
    ranked_entropy_figure,
    relevance_curve_figure,
)


def tidy_table(
    sweep: pd.DataFrame, entropies: Mapping[str, EntropyReport], relevance: pd.DataFrame
) -> pd.DataFrame:
    """Every number of a study as ``model, analysis, representation, tau, metric, value`` rows."""
    rows: list[dict[str, Any]] = []
    for rec in sweep.to_dict("records"):
        for metric in ("top1", "top5"):
            rows.append(
                {
                    "model": rec["model"],
                    "analysis": "tau_sweep",
                    "representation": rec["representation"],
                    "tau": rec["tau"],
                    "metric": metric,
                    "value": rec[metric],
                }
            )
    for name, report in entropies.items():
        for rec in report.summary.to_dict("records"):
            for metric in (
                "mean",
                "std",
                "frac_one_hot",
                "frac_two_hot",
                "frac_uniform",
                "eff_vertices",
            ):
                rows.append(
                    {
                        "model": name,
                        "analysis": "entropy",
                        "representation": "sem",
                        "tau": rec["tau"],
                        "metric": f"entropy_{metric}",
                        "value": rec[metric],
                    }
                )
    for rec in relevance.to_dict("records"):
        for metric in ("top1", "relevance_mean", "relevance_sum", "z", "p", "null_mean"):
            rows.append(
                {
                    "model": rec["model"],
                    "analysis": "relevance",
                    "representation": rec["features"],
                    "tau": np.nan,
                    "metric": metric,
                    "value": rec[metric],
                }
            )
    return pd.DataFrame(
        rows, columns=["model", "analysis", "representation", "tau", "metric", "value"]
    )


def study_figures(
    sweep: pd.DataFrame,
    entropies: Mapping[str, EntropyReport],
    rel_results: list[ModelResult],
    loaded: Mapping[str, LoadedModel],
) -> dict[str, go.Figure]:
    """Accuracy vs tau, entropy histograms and rankings, and relevance curves, by name."""
    figures: dict[str, go.Figure] = {}
    if len(sweep):
        figures["accuracy_vs_tau"] = accuracy_vs_tau_figure(sweep)
    for name, report in entropies.items():
        figures[f"entropy_histogram_{name}"] = entropy_histogram_figure(
            report.histogram, loaded[name].spec.vocab
        )
        figures[f"entropy_ranked_{name}"] = ranked_entropy_figure(report.per_simplex)
    if rel_results:
        sources = list(rel_results[0].curves)
        named = sources[0] if len(sources) > 1 else None
        figures["relevance_curve"] = relevance_curve_figure(
            {r.name: r.curve for r in rel_results}, named, curve_intervals(rel_results, sources[0])
        )
        for source in sources[1:]:
            slug = re.sub(r"[^A-Za-z0-9]+", "_", source).strip("_")
            figures[f"relevance_curve_{slug}"] = relevance_curve_figure(
                {r.name: r.curves[source] for r in rel_results},
                source,
                curve_intervals(rel_results, source),
            )
    return figures


def curve_intervals(results: list[ModelResult], source: str) -> dict[str, pd.DataFrame]:
    """Each bootstrapped model's K-curve intervals against ``source`` (``--bootstrap``)."""
    out: dict[str, pd.DataFrame] = {}
    for r in results:
        if r.bootstrap is not None:
            table = r.bootstrap.intervals()
            out[r.name] = table[
                (table["statistic"] == "curve_mean") & (table["superclasses"] == source)
            ]
    return out
