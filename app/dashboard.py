"""The semprobe dashboard: browse the simplices, graphs, relevance and entropy of SEM runs.

Run it with ``semprobe dashboard RUN_DIR...`` or ``streamlit run app/dashboard.py -- RUN_DIR...``;
run directories also come from ``$SEMPROBE_RUNS`` (``os.pathsep``-separated) and from the
sidebar's "Open a run directory" box. Views:

* Runs: every opened run and model, with its probe accuracy and relevance summary.
* Simplices (the simplex browser): one simplex of a SEM model, its vertices' top test images,
  class profiles and entropy at any tau (the SEM softmax is re-applied to the cached logits of
  that simplex only).
* Graph: W_K at any K, categories coloured by superclass, a category's 2-neighbours.
* Relevance: relevance vs K of every opened model, with its permutation-null band.
* Entropy: entropy histograms per tau, per-class and per-superclass entropy.
* Compare: two models side by side on the same K and tau.

A damaged run directory or model shows an error and leaves the rest of the app working.
"""

from __future__ import annotations

import contextlib
import html
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

try:
    from semprobe.app import compute, data, figures
except ImportError:  # run as a plain script from a checkout: the package root is one level up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from semprobe.app import compute, data, figures

from semprobe.errors import SemprobeError
from semprobe.plots import (
    accuracy_vs_tau_figure,
    entropy_histogram_figure,
    ranked_entropy_figure,
    relevance_curve_figure,
)
from semprobe.rundir import Run

# The view names are also the values of the ``view`` URL parameter (``?view=Graph``).
VIEWS = ("Runs", "Simplices", "Graph", "Relevance", "Entropy", "Compare")
IMAGES_PER_VERTEX = 8


@dataclass
class OpenedRun:
    """A run directory given to the app: its models, or why it could not be opened."""

    path: str
    label: str
    run: Run | None = None
    stamp: str = ""
    error: str | None = None
    models: list[data.ModelData] = field(default_factory=list)
    model_errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def shown_errors(what: str) -> Iterator[None]:
    """Show problems with the data of a view as ``st.error`` instead of a traceback."""
    try:
        yield
    except SemprobeError as exc:
        st.error(f"{what}: {exc}")
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError) as exc:
        # Shapes or fields that contradict each other: a damaged or hand-edited run.
        kind = type(exc).__name__
        st.error(f"{what}: the run's files are damaged or inconsistent ({kind}: {exc})")


def keep_valid(key: str, options: Sequence[object]) -> None:
    """Forget a widget's stored choice that is not among its current options.

    Options depend on the model or the opened runs; a stale choice would make Streamlit refuse
    the widget, so it falls back to the widget's default instead.
    """
    if key not in st.session_state:
        return
    value = st.session_state[key]
    if isinstance(value, list):
        kept = [v for v in value if v in options]
        if kept != value:
            st.session_state[key] = kept
    elif value not in options:
        del st.session_state[key]


# ---------------------------------------------------------------------------------------------
# Opening runs
# ---------------------------------------------------------------------------------------------


def _add_run() -> None:
    path = st.session_state.get("new_run", "").strip()
    extra = st.session_state.setdefault("extra_runs", [])
    if path and path not in extra:
        extra.append(path)
    st.session_state["new_run"] = ""


def open_runs(paths: list[str]) -> list[OpenedRun]:
    """Open every run (cached); a broken one records its error instead."""
    opened: list[OpenedRun] = []
    labels: set[str] = set()
    for path in paths:
        label = Path(path).expanduser().resolve().name or path
        base, i = label, 2
        while label in labels:
            label, i = f"{base} ({i})", i + 1
        labels.add(label)
        item = OpenedRun(path=path, label=label)
        opened.append(item)
        try:
            item.run, item.stamp = data.open_run(path)
        except SemprobeError as exc:
            item.error = str(exc)
            continue
        for name in item.run.meta["models"]:
            try:
                item.models.append(
                    data.model_data(str(item.run.root), item.stamp, label, str(name))
                )
            except SemprobeError as exc:
                item.model_errors.append(f"model {name!r}: {exc}")
    return opened


def sidebar(opened: list[OpenedRun], models: dict[str, data.ModelData]) -> data.ModelData | None:
    """Run picker, view and model choice, and the tau slider; returns the chosen model."""
    bar = st.sidebar
    bar.title("semprobe")
    bar.radio("View", VIEWS, key="view", bind="query-params")
    chosen = None
    if models:
        keep_valid("model", list(models))
        bar.selectbox(
            "Model",
            list(models),
            key="model",
            bind="query-params",
            help="run/model; the views below show this model",
        )
        chosen = models.get(st.session_state.get("model") or "")
        if chosen is not None:
            bar.caption(
                f"{chosen.kind}"
                + (
                    f" · L={chosen.num_simplices}, V={chosen.vocab}, tau={chosen.tau:g}"
                    if chosen.has_sem
                    else ""
                )
            )
    sem_taus = [m.tau for m in models.values() if m.has_sem]
    grid = compute.tau_grid(sem_taus)
    keep_valid("tau", grid)
    start = chosen.tau if chosen is not None and chosen.has_sem else 1.0
    bar.select_slider(
        "SEM temperature tau (log scale)",
        options=grid,
        value=compute.nearest(grid, start),
        format_func=lambda t: f"{t:g}",
        key="tau",
        bind="query-params",
        help="The SEM softmax is re-applied to the cached logits at this temperature.",
    )
    bar.divider()
    bar.text_input(
        "Open a run directory", key="new_run", placeholder="path/to/run", on_change=_add_run
    )
    bar.caption("Opened runs")
    for item in opened:
        if item.error:
            bar.error(f"{item.path}: {item.error}")
            continue
        bar.markdown(f"**{item.label}** · {len(item.models)} model(s)")
        for message in item.model_errors:
            bar.error(f"{item.label}: {message}")
    if not opened:
        bar.info("No run opened yet.")
    return chosen


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def _summary_row(model: data.ModelData) -> dict[str, object]:
    s = model.summary or {}
    probe = s.get("probe") or {}
    rel = s.get("relevance") or {}
    # RelevanceTest.as_dict() is flat; accept a nested "observed" block too.
    nested = rel.get("observed")
    observed: dict[str, Any] = nested if isinstance(nested, dict) else rel
    return {
        "run": model.run_label,
        "model": model.name,
        "kind": model.kind,
        "dataset": s.get("dataset"),
        "L": model.num_simplices or None,
        "V": model.vocab or None,
        "tau (pretraining)": model.tau if model.has_sem else None,
        "probe features": s.get("representation"),
        "probe tau": s.get("tau"),
        "n features": s.get("n_features"),
        "top1": probe.get("top1"),
        "top5": probe.get("top5"),
        "sparsity": probe.get("sparsity"),
        "K": rel.get("k"),
        "relevance mean": observed.get("mean"),
        "null mean": rel.get("null_mean"),
        "chance": rel.get("chance"),
        "z": rel.get("z"),
        "p": rel.get("p", rel.get("p_value")),
        "lift vs random init": s.get("lift_vs_random_init"),
    }


def view_runs(opened: list[OpenedRun]) -> None:
    st.header("Runs")
    if not opened:
        st.info(
            "Open a run directory: `semprobe dashboard RUN_DIR`, or type its path in the sidebar."
        )
        return
    rows = [_summary_row(m) for item in opened for m in item.models]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    for item in opened:
        if item.error:
            st.error(f"{item.path}: {item.error}")
            continue
        assert item.run is not None
        with st.expander(f"{item.label}: {item.run.root}", expanded=len(opened) == 1):
            meta = item.run.meta
            params = meta.get("parameters") or {}
            cols = st.columns(4)
            cols[0].metric("Kind", str(meta.get("kind", "?")))
            cols[1].metric("Models", len(item.models))
            cols[2].metric("Classes", len(item.run.class_names))
            with shown_errors(f"{item.label}: test labels"):
                n = len(data.labels(str(item.run.root), item.stamp))
                cols[3].metric("Test images", n)
            taus = params.get("taus")
            st.caption(
                f"dataset: {params.get('dataset', '?')} · created by {meta.get('created_by', '?')}"
                + (f" · study taus: {', '.join(f'{t:g}' for t in taus)}" if taus else "")
            )
            for message in item.model_errors:
                st.error(message)
            with shown_errors(f"{item.label}: thumbnails"):
                data.thumbnails(str(item.run.root), item.stamp)
            if params:
                st.json(params, expanded=False)
            sweeps = []
            for model in item.models:
                with shown_errors(f"{model.key}: tau_sweep.csv"):
                    sweep = data.table(model.run_path, model.stamp, model.name, "tau_sweep.csv")
                    if sweep is not None:
                        sweeps.append(sweep)
            if sweeps:
                st.plotly_chart(
                    accuracy_vs_tau_figure(pd.concat(sweeps, ignore_index=True)),
                    key=f"sweep-{item.label}",
                )


# ---------------------------------------------------------------------------------------------
# Simplex browser
# ---------------------------------------------------------------------------------------------


def _choose_simplex(model: data.ModelData, tau: float) -> tuple[int, pd.DataFrame | None]:
    """The order and index/rank inputs; returns the simplex and the ranking table shown."""
    n = model.num_simplices
    for key, top in (("simplex", n - 1), ("rank", n)):
        # A number input refuses a stored value above its new maximum after a model switch.
        if key in st.session_state and st.session_state[key] > top:
            st.session_state[key] = top
    left, right = st.columns([2, 3])
    by = left.selectbox("Order simplices by", compute.ORDERS, key="order")
    if by == "index":
        simplex = int(
            right.number_input(
                "Simplex (index)", 0, n - 1, step=1, key="simplex", bind="query-params"
            )
        )
        return simplex, None
    scores = data.simplex_scores(model.run_path, model.stamp, model.name)
    entropy = None
    if by.startswith("entropy"):
        entropy = data.simplex_entropy_means(model.run_path, model.stamp, model.name, tau)
    order = compute.simplex_order(
        by, n, entropy=entropy, mass=scores["weight_mass"].to_numpy(), contribution=scores
    )
    rank = int(right.number_input(f"Rank (1 = first by {by})", 1, n, step=1, key="rank"))
    ranking = scores.iloc[order[:10]].copy()
    ranking.insert(0, "rank", np.arange(1, len(ranking) + 1))
    if entropy is not None:
        ranking["mean entropy"] = entropy[order[:10]]
    return int(order[rank - 1]), ranking


def view_simplex(model: data.ModelData, run: Run, tau: float) -> None:
    if not model.has_sem:
        st.info(f"{model.key} is a baseline without a SEM layer: it has no simplices.")
        return
    simplex, ranking = _choose_simplex(model, tau)
    view = data.simplex_view(
        model.run_path, model.stamp, model.name, simplex, tau, IMAGES_PER_VERTEX
    )
    labels = data.labels(model.run_path, model.stamp)
    scores = data.simplex_scores(model.run_path, model.stamp, model.name)
    concepts = data.table(model.run_path, model.stamp, model.name, "relevance/feature_concepts.csv")
    here = pd.DataFrame()
    if concepts is not None and "simplex" in concepts:
        here = concepts[concepts["simplex"] == simplex].set_index("vertex")

    st.header(f"Simplex {simplex}")
    st.caption(
        f"{model.key} · L={model.num_simplices}, V={model.vocab} · tau={tau:g} "
        f"(pre-training tau={model.tau:g})"
    )
    row = scores.iloc[simplex]
    cols = st.columns(5)
    cols[0].metric(
        "Mean entropy H (nats)",
        f"{view.mean_entropy:.4f}",
        help="Mean over the test images of the simplex's entropy at this tau.",
    )
    cols[1].metric("H / ln V", f"{view.normalised_entropy:.3f}")
    mass = float(row["weight_mass"])
    cols[2].metric(
        "Probe weight mass",
        "n/a" if math.isnan(mass) else f"{mass:.3f}",
        help="Sum of |coef| over the simplex's V features and every class.",
    )
    cols[3].metric("Vertices kept in W_K", f"{int(row['kept'])}/{model.vocab}")
    cols[4].metric(
        "Coherent vertices",
        int(row["coherent"]),
        help="Kept vertices whose categories (two or more) share one superclass.",
    )

    hist_col, side_col = st.columns([3, 2])
    with hist_col:
        st.caption("Entropy of this simplex over the test images")
        st.vega_lite_chart(
            figures.entropy_histogram_data(view.hist_counts, view.hist_edges),
            figures.entropy_histogram_spec(float(view.hist_edges[-1])),
        )
    with side_col:
        if ranking is not None:
            st.caption("Top simplices in this order")
            st.dataframe(ranking, hide_index=True, height=240)
        elif len(here):
            st.caption("Concepts of the kept vertices (feature_concepts.csv)")
            st.dataframe(here[["concept", "categories", "coherent"]], height=240)
        else:
            st.caption("No vertex of this simplex is kept in W_K.")

    st.html(figures.VERTEX_CSS)
    top = view.top_images.shape[1]
    uris = data.thumbnail_uris(model.run_path, model.stamp, view.top_images.reshape(-1).tolist())
    for v in range(model.vocab):
        title = f"<b>Vertex {v}</b> · mean activation {view.vertex_means[v]:.3f}"
        if v in here.index:
            c = here.loc[v]
            tag = "coherent" if bool(c["coherent"]) else "mixed"
            title += (
                f" · concept <b>{html.escape(str(c['concept']))}</b> ({tag}: "
                f"{html.escape(str(c['categories']).replace(';', ', '))})"
            )
        else:
            title += " · not kept in W_K"
        idx = view.top_images[v]
        names = [run.class_names[labels[i]] for i in idx]
        st.html(
            figures.vertex_html(
                title,
                uris[v * top : (v + 1) * top],
                captions=[
                    f"{p:.2f} {name}" for p, name in zip(view.top_values[v], names, strict=True)
                ],
                tooltips=[
                    f"test image {i}: {name}, activation {p:.3f}"
                    for i, name, p in zip(idx, names, view.top_values[v], strict=True)
                ],
                bars=figures.class_bars(view.class_means[v], run.class_names),
            )
        )


# ---------------------------------------------------------------------------------------------
# Graph
# ---------------------------------------------------------------------------------------------


def _k_bounds(model: data.ModelData, n_features: int) -> tuple[int, int]:
    k_max = int(model.setting("k_max", 50) or 50)
    rule = model.setting("rule", "category")
    limit = n_features if rule == "category" else 10**9
    default = int(model.setting("k", 10) or 10)
    top = max(1, min(limit, max(k_max, default)))
    return min(default, top), top


def view_graph(model: data.ModelData, run: Run) -> None:
    st.header("Feature-category graph W_K")
    probe = data.probe(model.run_path, model.stamp, model.name)
    n_classes, n_features = probe.coef.shape
    rule = str(model.setting("rule", "category"))
    if rule == "feature":
        n_features = max(n_features, n_classes)
    default, top = _k_bounds(model, probe.coef.shape[1])
    if rule == "feature":
        top = min(top, n_classes)
    if "k" in st.session_state and st.session_state["k"] > top:
        st.session_state["k"] = top
    if "k" not in st.session_state:
        st.session_state["k"] = min(default, top)
    controls, _ = st.columns([2, 3])
    k = int(controls.slider("K (features per category)", 1, top, key="k", bind="query-params"))
    graph = data.graph(model.run_path, model.stamp, model.name, k, rule)
    supers = data.superclasses(run)
    names = data.feature_names(model, probe.coef.shape[1])
    relevance = data.relevance_at_k(model.run_path, model.stamp, model.name, k, rule)
    cols = st.columns(4)
    cols[0].metric("Edges in W_K", graph.n_edges)
    cols[1].metric("Features used", int(np.count_nonzero(graph.feature_degree())))
    cols[2].metric("Relevance (mean)", "n/a" if math.isnan(relevance) else f"{relevance:.3f}")
    cols[3].metric("Isolated categories", compute.isolated_categories(graph))
    st.caption(
        f"{model.key} · rule={rule} · recomputed from relevance/probe.npz; "
        f"C={n_classes} categories, F={probe.coef.shape[1]} features."
    )

    plot_col, side_col = st.columns([3, 2])
    with side_col:
        keep_valid("category", list(range(n_classes)))
        category = st.selectbox(
            "Category",
            list(range(n_classes)),
            format_func=lambda c: run.class_names[c],
            key="category",
            bind="query-params",
        )
        category = int(category or 0)
        neighbours = compute.neighbours_table(graph, category, run.class_names, supers)
        same = int(neighbours["same_superclass"].sum()) if len(neighbours) else 0
        st.subheader(f"2-neighbours of {run.class_names[category]}")
        st.markdown(
            f"Superclass **{supers[category]}** · {len(neighbours)} 2-neighbours, "
            f"{same} of them in the same superclass."
        )
        st.dataframe(neighbours, hide_index=True, height=300)
        st.caption("Its features in W_K")
        st.dataframe(compute.category_features(graph, category, names), hide_index=True, height=200)
    with plot_col:
        st.plotly_chart(
            figures.bipartite_figure(graph, run.class_names, supers, names, highlight=category)
        )


# ---------------------------------------------------------------------------------------------
# Relevance
# ---------------------------------------------------------------------------------------------


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
    primary = ((model.summary or {}).get("superclasses") or {}).get("source")
    if source is None or source == primary:
        return data.table(model.run_path, model.stamp, model.name, "relevance/curve.csv")
    table = data.table(
        model.run_path, model.stamp, model.name, "relevance/curves_by_superclasses.csv"
    )
    if table is None or "superclasses" not in table.columns:
        return None
    rows = table[table["superclasses"] == source]
    return rows.drop(columns="superclasses").reset_index(drop=True) if len(rows) else None


def view_relevance(models: dict[str, data.ModelData]) -> None:
    st.header("Relevance vs K")
    sources = list(
        dict.fromkeys(row["superclasses"] for m in models.values() for row in _superclass_rows(m))
    )
    source = None
    if len(sources) > 1:
        keep_valid("curve_superclasses", sources)
        source = st.radio("Superclasses", sources, horizontal=True, key="curve_superclasses")
    curves: dict[str, pd.DataFrame] = {}
    for key, model in models.items():
        with shown_errors(f"{key}: relevance curve"):
            curve = _curve(model, source)
            if curve is not None:
                missing = {"k", "mean", "null_mean", "null_std"} - set(curve.columns)
                if missing:
                    raise SemprobeError(f"curve.csv lacks the columns {sorted(missing)}")
                curves[key] = curve
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
    if named:
        st.plotly_chart(relevance_curve_figure(named, source))
    st.caption(
        "Lines: mean relevance over the non-isolated categories; bands: permutation "
        "null (mean +- 2 sd), where category -> superclass labels are shuffled."
    )
    rows = []
    for key in chosen:
        row = _summary_row(models[key])
        rows.append(
            {
                c: row[c]
                for c in (
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
            }
        )
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    by_source = [row for key in chosen for row in _superclass_rows(models[key])]
    if len({row["superclasses"] for row in by_source}) > 1:
        st.subheader("The same W_K against each superclass grouping")
        st.dataframe(pd.DataFrame(by_source), hide_index=True)


# ---------------------------------------------------------------------------------------------
# Entropy
# ---------------------------------------------------------------------------------------------


def view_entropy(model: data.ModelData, tau: float) -> None:
    st.header("Entropy of the simplices")
    if not model.has_sem:
        st.info(f"{model.key} is a baseline without a SEM layer.")
        return
    report = None
    with shown_errors(f"{model.key}: entropy report"):
        report = data.entropy_report(model.run_path, model.stamp, model.name)
    # A precomputed report (written by a study) is shown first: it costs nothing to open.
    sources = (["report"] if report is not None else []) + ["live"]
    keep_valid("entropy_source", sources)
    source = st.radio(
        "Source",
        sources,
        horizontal=True,
        key="entropy_source",
        format_func=lambda s: (
            "live from the logits" if s == "live" else "precomputed report (entropy/)"
        ),
    )
    if source == "report" and report is not None:
        tables = report
        shown = ", ".join(f"{t:g}" for t in report.meta.get("taus", []))
        st.caption(f"Precomputed at tau = {shown}")
    else:
        grid = compute.tau_grid([model.tau, tau])
        default = sorted({compute.nearest(grid, t) for t in (0.1, model.tau, 1.0, tau)})
        keep_valid("entropy_taus", grid)
        taus = st.multiselect(
            "Temperatures",
            grid,
            default=default,
            key="entropy_taus",
            format_func=lambda t: f"{t:g}",
        )
        if not taus:
            st.info("Choose at least one temperature.")
            return
        tables = data.entropy_tables(model.run_path, model.stamp, model.name, tuple(sorted(taus)))
    left, right = st.columns(2)
    left.plotly_chart(entropy_histogram_figure(tables.histogram, model.vocab))
    right.plotly_chart(ranked_entropy_figure(tables.per_simplex))
    st.subheader("Summary per tau")
    st.dataframe(tables.summary, hide_index=True)
    if len(tables.per_class):
        st.subheader("Mean entropy per class")
        per_class = tables.per_class.pivot_table(index="class", columns="tau", values="mean")
        per_class.columns = [f"tau={t:g}" for t in per_class.columns]
        st.dataframe(per_class, height=320)
    if len(tables.per_superclass):
        st.subheader("Mean entropy per superclass")
        per_super = tables.per_superclass.pivot_table(
            index="superclass", columns="tau", values="mean"
        )
        per_super.columns = [f"tau={t:g}" for t in per_super.columns]
        st.dataframe(per_super, height=320)


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


def _compare_column(model: data.ModelData, run: Run, k: int, tau: float, side: str) -> None:
    st.subheader(f"{model.key} ({model.kind})")
    row = _summary_row(model)
    cols = st.columns(3)
    top1 = row["top1"]
    cols[0].metric("Probe top-1", "n/a" if not isinstance(top1, float | int) else f"{top1:.3f}")
    with shown_errors(f"{model.key}: graph"):
        rule = str(model.setting("rule", "category"))
        probe = data.probe(model.run_path, model.stamp, model.name)
        limit = probe.coef.shape[1] if rule == "category" else probe.coef.shape[0]
        kk = min(k, limit)
        graph = data.graph(model.run_path, model.stamp, model.name, kk, rule)
        rel = data.relevance_at_k(model.run_path, model.stamp, model.name, kk, rule)
        cols[1].metric(f"Edges in W_K (K={kk})", graph.n_edges)
        cols[2].metric(f"Relevance at K={kk}", "n/a" if math.isnan(rel) else f"{rel:.3f}")
        names = data.feature_names(model, probe.coef.shape[1])
        figure = figures.bipartite_figure(
            graph, run.class_names, data.superclasses(run), names, height=480, legend=False
        )
        st.plotly_chart(figure, key=f"graph-{side}")
    if model.has_sem:
        with shown_errors(f"{model.key}: entropy"):
            tables = data.entropy_tables(model.run_path, model.stamp, model.name, (tau,))
            st.plotly_chart(
                entropy_histogram_figure(tables.histogram, model.vocab), key=f"entropy-{side}"
            )
            summary = tables.summary.iloc[0]
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
    else:
        st.info("Baseline without a SEM layer: no entropy or simplices.")


def view_compare(models: dict[str, data.ModelData], runs: dict[str, Run], tau: float) -> None:
    st.header("Compare two models")
    keys = list(models)
    if len(keys) < 2:
        st.info("Open a run with two models, or two runs, to compare them.")
        return
    left, right, kcol = st.columns([2, 2, 1])
    keep_valid("compare_a", keys)
    keep_valid("compare_b", keys)
    a = left.selectbox("Left", keys, index=0, key="compare_a")
    b = right.selectbox("Right", keys, index=1, key="compare_b")
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
    if len(curves) == 2:
        st.plotly_chart(relevance_curve_figure(curves), key="curve-both")
    col_a, col_b = st.columns(2)
    for col, key, side in ((col_a, a, "left"), (col_b, b, "right")):
        with col, shown_errors(key):
            _compare_column(models[key], runs[key], k, tau, side)


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------


def main() -> None:
    """Build the page for the current session."""
    st.set_page_config(page_title="semprobe dashboard", layout="wide")
    paths = data.requested_runs() + list(st.session_state.get("extra_runs", []))
    opened = open_runs(list(dict.fromkeys(paths)))
    models: dict[str, data.ModelData] = {}
    runs: dict[str, Run] = {}
    for item in opened:
        for model in item.models:
            assert item.run is not None
            models[model.key] = model
            runs[model.key] = item.run
    chosen = sidebar(opened, models)
    view = st.session_state.get("view") or VIEWS[0]
    tau = float(st.session_state["tau"])
    if view == "Runs":
        view_runs(opened)
    elif view == "Relevance":
        view_relevance(models)
    elif view == "Compare":
        view_compare(models, runs, tau)
    elif chosen is None:
        st.header(view)
        st.info("No model to show: open a run directory (see the sidebar).")
    else:
        with shown_errors(f"{chosen.key}"):
            run = runs[chosen.key]
            if view == "Simplices":
                view_simplex(chosen, run, tau)
            elif view == "Graph":
                view_graph(chosen, run)
            elif view == "Entropy":
                view_entropy(chosen, tau)


main()
