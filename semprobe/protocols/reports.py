"""The written form of a protocol's results: tidy tables, markdown, figures, a run directory.

Each protocol's tables are written under fixed names at the top of a run directory (``knn.csv``;
``linear_grid.csv`` and ``linear_table.csv``; ``robustness.csv`` and
``robustness_corruptions.csv``; ``transfer.csv``; each also as Parquet), with ``<protocol>.md``
(the paper's layout), plotly HTML figures, and ``summary.json``. A study writes the same files at
the top of its run, so the dashboard's protocol views open both.

Layout of a protocol run (format 1 of :mod:`semprobe.rundir`)::

    RUN/
      run.json            kind (the protocol), models, every parameter (written last)
      summary.json        the parameters and the paper-layout table as records
      classes.json, labels.npy, thumbnails.npy    the run format's (no per-image data here)
      <model>/model.json  checkpoint and spec of each model
      <table>.csv, <table>.parquet, <protocol>.md, <figure>.html
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from semprobe.atomic import write_json, write_text
from semprobe.checkpoint import LoadedModel
from semprobe.plots import write_figure
from semprobe.protocols.figures import (
    grid_heatmap_figure,
    knn_figure,
    representation_label,
    robustness_figure,
    transfer_figure,
)
from semprobe.protocols.robustness import corruption_table, robustness_table
from semprobe.protocols.transfer import transfer_table
from semprobe.rundir import building_run, write_dataset_files, write_run_metadata

PROTOCOLS = ("knn", "linear_grid", "robustness", "transfer")
#: The tables each protocol writes (the first is the tidy one its models' rows go into).
TABLES = {
    "knn": ("knn",),
    "linear_grid": ("linear_grid", "linear_table"),
    "robustness": ("robustness", "robustness_corruptions"),
    "transfer": ("transfer",),
}


def markdown_table(table: pd.DataFrame, percent: bool = False, index: bool = True) -> str:
    """A GitHub markdown table; numbers to 4 significant digits, or as percentages.

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"top1": [0.5]}, index=["m"]), percent=True))
    |  | top1 |
    | --- | --- |
    | m | 50.0 |
    """

    def cell(value: Any) -> str:
        if isinstance(value, float | np.floating):
            if math.isnan(value):
                return "-"
            return f"{100 * value:.1f}" if percent else f"{value:.4g}"
        return str(value).replace("|", "\\|")

    frame = table.reset_index() if index else table
    if index and isinstance(table.index, pd.MultiIndex):
        header = [str(c) for c in frame.columns]
    elif index:
        header = [str(table.index.name or ""), *map(str, table.columns)]
    else:
        header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


@dataclass
class Report:
    """A protocol's markdown, figures and headline table (records for ``summary.json``)."""

    markdown: str
    figures: dict[str, go.Figure] = field(default_factory=dict)
    headline: pd.DataFrame = field(default_factory=pd.DataFrame)


def knn_interval_table(tidy: pd.DataFrame, labels: list[str], columns: list[str]) -> str:
    """The top-1 accuracies with their bootstrap intervals, as a markdown table (%)."""
    cells = [
        f"{100 * a:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
        for a, lo, hi in zip(tidy["top1"], tidy["top1_low"], tidy["top1_high"], strict=True)
    ]
    wide = tidy.assign(features=labels, setting=columns, cell=cells).pivot_table(
        index=["model", "features"], columns="setting", values="cell", aggfunc="first", sort=False
    )
    wide.columns.name = None
    return "## Top-1 (%) with its bootstrap percentile interval\n\n" + markdown_table(wide)


def _knn(tables: Mapping[str, pd.DataFrame]) -> Report:
    tidy = tables["knn"]
    labels = [
        representation_label(r, t) for r, t in zip(tidy["representation"], tidy["tau"], strict=True)
    ]
    temps = ["" if pd.isna(t) else f", T={t:g}" for t in tidy["temperature"]]
    columns = [
        f"{c} (k={k}{t})" for c, k, t in zip(tidy["convention"], tidy["k"], temps, strict=True)
    ]
    wide = tidy.assign(features=labels, setting=columns).pivot_table(
        index=["model", "features"], columns="setting", values="top1", sort=False
    )
    wide.columns.name = None
    text = "# Weighted kNN, top-1 accuracy (%)\n\n" + markdown_table(wide, percent=True)
    if "top1_low" in tidy:
        text += "\n\n" + knn_interval_table(tidy, labels, columns)
    return Report(text + "\n", {"knn": knn_figure(tidy)}, wide.reset_index())


def _linear(tables: Mapping[str, pd.DataFrame]) -> Report:
    from semprobe.protocols.linear_grid import heatmap_table

    table = tables["linear_table"]
    parts = [
        "# Linear protocol: test top-1 (%), probes trained at tau_train (rows), evaluated "
        "at tau_eval (columns)"
    ]
    figures = {}
    for model in dict.fromkeys(table["model"]):
        parts.append(f"\n## {model}\n")
        sem = table[(table["model"] == model) & (table["representation"] == "sem")]
        if len(sem):
            parts.append(markdown_table(heatmap_table(table, model), percent=True))
            figures[f"linear_grid_{model}"] = grid_heatmap_figure(table, model)
        base = table[(table["model"] == model) & (table["representation"] != "sem")]
        if len(base):
            parts.append("\nbaselines:\n")
            shown = base.set_index("representation")[["strength", "val_top1", "top1", "top5"]]
            parts.append(markdown_table(shown, percent=False))
    return Report("\n".join(parts) + "\n", figures, table)


def _robustness(tables: Mapping[str, pd.DataFrame]) -> Report:
    tidy = tables["robustness"]
    wide = robustness_table(tidy)
    text = "# Robustness (the paper's Table 2 layout): top-1 accuracy (%)\n\n"
    text += markdown_table(wide, percent=True)
    corruptions = tables.get("robustness_corruptions", pd.DataFrame())
    if len(corruptions):
        text += "\n\n## ImageNet-C per corruption: top-1 accuracy (%)\n\n"
        text += markdown_table(
            corruptions.set_index(["model", "labels", "eval", "corruption"]), True
        )
    left = tidy[tidy["left_out"] > 0]
    if len(left):
        text += "\n\nImages of classes the probe lacks were left out: " + ", ".join(
            f"{r.eval} {r.left_out}" for r in left.drop_duplicates("dataset").itertuples()
        )
    return Report(text + "\n", {"robustness": robustness_figure(wide)}, wide.reset_index())


def _transfer(tables: Mapping[str, pd.DataFrame]) -> Report:
    tidy = tables["transfer"]
    wide = transfer_table(tidy)
    text = (
        "# Transfer (the paper's Table 3 layout), accuracy (%)\n\nMean per-class accuracy for "
        "pets, flowers102 and caltech101, top-1 elsewhere (Kornblith et al., 2019).\n\n"
    )
    text += markdown_table(wide, percent=True)
    for metric in ("top1", "mean_per_class"):
        text += f"\n\n## {metric}\n\n" + markdown_table(transfer_table(tidy, metric), percent=True)
    return Report(text + "\n", {"transfer": transfer_figure(wide)}, wide.reset_index())


def complete_tables(protocol: str, tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The protocol's tables with those derived from the tidy one (ImageNet-C per corruption)."""
    out = dict(tables)
    if protocol == "robustness":
        out["robustness_corruptions"] = corruption_table(out["robustness"])
    return out


def report(protocol: str, tables: Mapping[str, pd.DataFrame]) -> Report:
    """The markdown, figures and headline of one protocol's tables."""
    makers = {"knn": _knn, "linear_grid": _linear, "robustness": _robustness, "transfer": _transfer}
    return makers[protocol](tables)


def write_report(folder: Path, protocol: str, tables: Mapping[str, pd.DataFrame]) -> Report:
    """Write a protocol's tables (CSV and Parquet), ``<protocol>.md`` and figures in ``folder``."""
    tables = complete_tables(protocol, tables)
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
        table.to_parquet(folder / f"{name}.parquet", index=False)
    written = report(protocol, tables)
    write_text(folder / f"{protocol}.md", written.markdown)
    for name, figure in written.figures.items():
        write_figure(figure, folder / f"{name}.html", png=False)
    return written


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(table.to_json(orient="records"))


def write_protocol_run(
    out: str | Path,
    protocol: str,
    models: Mapping[str, tuple[LoadedModel, Path]],
    tables: Mapping[str, pd.DataFrame],
    parameters: Mapping[str, Any],
    class_names: list[str],
) -> Report:
    """A run directory of one protocol (see the module docstring), swapped into place at once."""
    with building_run(out) as work:
        empty = np.zeros((0, 32, 32, 3), dtype=np.uint8)
        write_dataset_files(work, class_names, None, np.zeros(0, dtype=np.int64), empty)
        for name, (loaded, checkpoint) in models.items():
            (work / name).mkdir()
            write_json(
                work / name / "model.json",
                {"model": name, "checkpoint": str(checkpoint), "spec": loaded.spec.to_dict()},
            )
        written = write_report(work, protocol, tables)
        write_json(
            work / "summary.json",
            {
                "protocol": protocol,
                "parameters": dict(parameters),
                "table": _records(written.headline),
            },
        )
        write_run_metadata(work, protocol, list(models), dict(parameters))
    return written
