"""The relevance view: relevance vs K of every opened model, with its permutation-null band.

Runs made with ``--bootstrap N`` add each curve's percentile intervals as error bars and a table
of the intervals at K (relevance, top-1, lift over the random-init twin), read from
``relevance/bootstrap.csv``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from semprobe.app import data
from semprobe.app.page import keep_valid, shown_errors, summary_row
from semprobe.app.views import intervals
from semprobe.errors import SemprobeError
from semprobe.plots import relevance_curve_figure

# The columns of the runs table that the relevance view repeats.
SUMMARY_COLUMNS = (
    "run",
    "model",
    "kind",
    "K",
    "relevance mean",
    "null mean",
    "chance",
    "z",
    "p",
    "top1",
)


def _superclass_rows(model: data.ModelData) -> list[dict[str, object]]:
    """One row per superclass grouping the model's W_K was scored against."""
    scored = (model.summary or {}).get("relevance_by_superclasses") or {}
    return [
        {
            "run": model.run_label,
            "model": model.name,
            "superclasses": source,
            "groups": (entry.get("superclasses") or {}).get("n_groups"),
            "relevance mean": entry["relevance"].get("mean"),
            "null mean": entry["relevance"].get("null_mean"),
            "chance": entry["relevance"].get("chance"),
            "z": entry["relevance"].get("z"),
            "p": entry["relevance"].get("p"),
            "lift vs random init": entry.get("lift_vs_random_init"),
        }
        for source, entry in scored.items()
        if isinstance(entry, dict) and isinstance(entry.get("relevance"), dict)
    ]


def _curve(model: data.ModelData, source: str | None) -> pd.DataFrame | None:
    """The model's relevance curve against ``source`` (None: its primary grouping)."""
    if source is None or source == intervals.primary_source(model):
        return data.table(model.run_path, model.stamp, model.name, "relevance/curve.csv")
    table = data.table(
        model.run_path, model.stamp, model.name, "relevance/curves_by_superclasses.csv"
    )
    if table is None or "superclasses" not in table.columns:
        return None
    rows = table[table["superclasses"] == source]
    return rows.drop(columns="superclasses").reset_index(drop=True) if len(rows) else None


def _curves(models: dict[str, data.ModelData], source: str | None) -> dict[str, pd.DataFrame]:
    """Every model's relevance curve that can be read; the others show an error."""
    curves: dict[str, pd.DataFrame] = {}
    for key, model in models.items():
        with shown_errors(f"{key}: relevance curve"):
            curve = _curve(model, source)
            if curve is not None:
                missing = {"k", "mean", "null_mean", "null_std"} - set(curve.columns)
                if missing:
                    raise SemprobeError(f"curve.csv lacks the columns {sorted(missing)}")
                curves[key] = curve
    return curves


def show(models: dict[str, data.ModelData]) -> None:
    """The curves of the chosen models against one grouping, and their summaries."""
    st.header("Relevance vs K")
    sources = list(
        dict.fromkeys(
            str(row["superclasses"]) for m in models.values() for row in _superclass_rows(m)
        )
    )
    source = None
    if len(sources) > 1:
        keep_valid("curve_superclasses", sources)
        source = st.radio("Superclasses", sources, horizontal=True, key="curve_superclasses")
    curves = _curves(models, source)
    if not curves:
        st.info("No opened model has a relevance curve (relevance/curve.csv).")
        return
    keep_valid("curves", list(curves))
    chosen = st.multiselect(
        "Models",
        list(curves),
        default=list(curves),
        key="curves",
        format_func=lambda k: f"{k} ({models[k].kind})",
    )
    named = {f"{k} ({models[k].kind})": curves[k] for k in chosen}
    boots = intervals.bootstraps({k: models[k] for k in chosen}, source)
    if named:
        label = {k: f"{k} ({models[k].kind})" for k in chosen}
        st.plotly_chart(relevance_curve_figure(named, source, intervals.curve_bars(boots, label)))
    st.caption(
        "Lines: mean relevance over the non-isolated categories; bands: permutation "
        "null (mean +- 2 sd), where category -> superclass labels are shuffled."
        + (" Error bars: bootstrap percentile intervals (resampled images)." if boots else "")
    )
    rows = [
        {c: row[c] for c in SUMMARY_COLUMNS} for row in (summary_row(models[k]) for k in chosen)
    ]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    if boots:
        _show_intervals(models, boots)
    by_source = [row for key in chosen for row in _superclass_rows(models[key])]
    if len({row["superclasses"] for row in by_source}) > 1:
        st.subheader("The same W_K against each superclass grouping")
        st.dataframe(pd.DataFrame(by_source), hide_index=True)


def _show_intervals(models: dict[str, data.ModelData], boots: dict[str, pd.DataFrame]) -> None:
    """The intervals at K of every bootstrapped model, and whether its lift is established."""
    rows = []
    for key, boot in boots.items():
        model = models[key]
        rows.append({"run": model.run_label, "model": model.name, **intervals.at_k(boot)})
    st.subheader("Bootstrap intervals at K")
    st.dataframe(pd.DataFrame(rows), hide_index=True)
