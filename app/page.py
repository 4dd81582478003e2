"""What every view of the dashboard shares: the opened runs, the sidebar, and error display.

:func:`open_runs` turns run directories into :class:`OpenedRun` items (a broken run keeps its
error instead of its models), :func:`sidebar` draws the run picker, the view and model choice and
the tau slider, :func:`shown_errors` shows a damaged run's problems as ``st.error`` and
:func:`keep_valid` forgets widget choices that a model switch made stale.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from semprobe.app import compute, data
from semprobe.errors import SemprobeError
from semprobe.rundir import Run

# The view names are also the values of the ``view`` URL parameter (``?view=Graph``).
# The last four are the evaluation protocols' (app/views/knn.py, linear.py, robustness.py, ...).
VIEWS: tuple[str, ...] = ("Runs", "Simplices", "Search", "Graph", "Relevance", "Entropy")
VIEWS += ("Compare",)
VIEWS += ("kNN", "Linear protocol", "Robustness", "Transfer")


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


def number(value: float, digits: int = 3) -> str:
    """A metric's value, or ``n/a`` for NaN (e.g. the relevance of a graph without edges)."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def summary_row(model: data.ModelData) -> dict[str, object]:
    """One row of the runs table: the model, its probe and its relevance summary."""
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


# ---------------------------------------------------------------------------------------------
# The sidebar
# ---------------------------------------------------------------------------------------------


def sidebar(opened: list[OpenedRun], models: dict[str, data.ModelData]) -> data.ModelData | None:
    """Run picker, view and model choice, and the tau slider; returns the chosen model."""
    bar = st.sidebar
    bar.title("semprobe")
    bar.radio("View", VIEWS, key="view", bind="query-params")
    chosen = _model_choice(models) if models else None
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
    _opened_list(opened)
    return chosen


def _model_choice(models: dict[str, data.ModelData]) -> data.ModelData | None:
    bar = st.sidebar
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
        shape = f" · L={chosen.num_simplices}, V={chosen.vocab}, tau={chosen.tau:g}"
        bar.caption(chosen.kind + (shape if chosen.has_sem else ""))
    return chosen


def _opened_list(opened: list[OpenedRun]) -> None:
    bar = st.sidebar
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
