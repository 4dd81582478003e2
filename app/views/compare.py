"""The comparison view: two models side by side on the same K and tau.

Runs made with ``--bootstrap N`` add the intervals: error bars on both relevance curves, each
model's top-1, relevance and lift over its random-init twin at the run's K, and, for two models of
one run, the paired difference of their lifts with whether it is established.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from semprobe.app import data, figures
from semprobe.app.page import keep_valid, number, shown_errors, summary_row
from semprobe.app.views import intervals
from semprobe.plots import entropy_histogram_figure, relevance_curve_figure
from semprobe.rundir import Run


def show(models: dict[str, data.ModelData], runs: dict[str, Run], tau: float) -> None:
    """The two models' relevance curves, then a column per model."""
    st.header("Compare two models")
    keys = list(models)
    if len(keys) < 2:
        st.info("Open a run with two models, or two runs, to compare them.")
        return
    left, right, kcol = st.columns([2, 2, 1])
    keep_valid("compare_a", keys)
    keep_valid("compare_b", keys)
    # Bound to the URL, so a comparison can be shared as a link.
    a = left.selectbox("Left", keys, index=0, key="compare_a", bind="query-params")
    b = right.selectbox("Right", keys, index=1, key="compare_b", bind="query-params")
    k = int(
        kcol.number_input(
            "K", 1, 1000, value=int(models[a].setting("k", 10) or 10), key="compare_k"
        )
    )
    curves = {}
    for key in (a, b):
        with shown_errors(f"{key}: relevance curve"):
            model = models[key]
            curve = data.table(model.run_path, model.stamp, model.name, "relevance/curve.csv")
            if curve is not None:
                curves[f"{key} ({model.kind})"] = curve
    boots = intervals.bootstraps({key: models[key] for key in (a, b)}, None)
    if len(curves) == 2:
        label = {key: f"{key} ({models[key].kind})" for key in (a, b)}
        bars = intervals.curve_bars(boots, label)
        st.plotly_chart(relevance_curve_figure(curves, None, bars), key="curve-both")
    if boots:
        _show_intervals(models[a], models[b], boots)
    col_a, col_b = st.columns(2)
    for col, key, side in ((col_a, a, "left"), (col_b, b, "right")):
        with col, shown_errors(key):
            _column(models[key], runs[key], k, tau, side)


def _show_intervals(a: data.ModelData, b: data.ModelData, boots: dict[str, pd.DataFrame]) -> None:
    """Both models' intervals at the run's K, and the paired difference of their lifts."""
    rows = []
    for model in (a, b):
        boot = boots.get(model.key)
        if boot is None:
            continue
        k = int(boot.loc[boot["statistic"] == "relevance_mean", "k"].max())
        rows.append({"model": model.key, "K": k, **intervals.at_k(boot)})
    st.subheader("Bootstrap intervals at the run's K")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="compare-intervals")
    with shown_errors("difference of lifts"):
        diff = intervals.lift_difference(a, b)
        if diff is None:
            st.caption(
                "No paired difference of lifts: it needs both models, with their random-init "
                "twins, bootstrapped in one run."
            )
            return
        st.markdown(
            f"**Lift of {a.name} minus lift of {b.name}** ({diff['superclasses']}, "
            f"{int(diff['n'])} paired resamples): {intervals.interval(diff, signed=True)}, "
            f"{intervals.verdict(diff)}"
        )


def _column(model: data.ModelData, run: Run, k: int, tau: float, side: str) -> None:
    st.subheader(f"{model.key} ({model.kind})")
    top1 = summary_row(model)["top1"]
    cols = st.columns(3)
    cols[0].metric("Probe top-1", number(top1) if isinstance(top1, float | int) else "n/a")
    with shown_errors(f"{model.key}: graph"):
        rule = str(model.setting("rule", "category"))
        probe = data.probe(model.run_path, model.stamp, model.name)
        limit = probe.coef.shape[1] if rule == "category" else probe.coef.shape[0]
        kk = min(k, limit)
        graph = data.graph(model.run_path, model.stamp, model.name, kk, rule)
        scored = data.relevance_at_k(model.run_path, model.stamp, model.name, kk, rule)
        cols[1].metric(f"Edges in W_K (K={kk})", graph.n_edges)
        cols[2].metric(f"Relevance at K={kk}", number(scored.mean))
        names = data.feature_names(model, probe.coef.shape[1])
        figure = figures.bipartite_figure(
            graph, run.class_names, data.superclasses(run), names, height=480, legend=False
        )
        st.plotly_chart(figure, key=f"graph-{side}")
    if model.has_sem:
        _sem_part(model, tau, side)
    else:
        st.info("Baseline without a SEM layer: no entropy or simplices.")


def _sem_part(model: data.ModelData, tau: float, side: str) -> None:
    """The entropy at ``tau`` and the most coherent simplices of a SEM model."""
    with shown_errors(f"{model.key}: entropy"):
        report = data.entropy_at(model.run_path, model.stamp, model.name, (tau,))
        st.plotly_chart(
            entropy_histogram_figure(report.histogram, model.vocab), key=f"entropy-{side}"
        )
        summary = report.summary.iloc[0]
        st.caption(
            f"tau={tau:g}: mean H = {summary['mean']:.4f} nats, "
            f"{summary['frac_one_hot']:.1%} near one-hot"
        )
    with shown_errors(f"{model.key}: simplex concepts"):
        simplex_table = data.table(
            model.run_path, model.stamp, model.name, "relevance/simplex_concepts.csv"
        )
        if simplex_table is not None and len(simplex_table):
            st.caption("Most coherent simplices (simplex_concepts.csv)")
            st.dataframe(simplex_table.head(8), hide_index=True, key=f"simplices-{side}")
