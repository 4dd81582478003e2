"""Bootstrap intervals as the views show them, read from ``relevance/bootstrap.csv``.

The relevance and the comparison views both draw a model's intervals (error bars on the K curve,
``estimate [low, high]`` in tables) and say whether a lift or a difference of lifts is
established (its interval excludes 0).
"""

from __future__ import annotations

import math

import pandas as pd

from semprobe.app import data
from semprobe.app.page import shown_errors
from semprobe.bootstrap import established
from semprobe.errors import SemprobeError

BOOTSTRAP_COLUMNS = {"statistic", "superclasses", "k", "estimate", "low", "high", "n"}
DIFFERENCE_COLUMNS = {"model", "other", "superclasses", "estimate", "low", "high", "n"}


def primary_source(model: data.ModelData) -> str | None:
    """The superclass grouping the model's relevance summary is scored against first."""
    return ((model.summary or {}).get("superclasses") or {}).get("source")


def bootstraps(models: dict[str, data.ModelData], source: str | None) -> dict[str, pd.DataFrame]:
    """Each model's bootstrap intervals against ``source`` (None: primary), where it has them."""
    found: dict[str, pd.DataFrame] = {}
    for key, model in models.items():
        with shown_errors(f"{key}: bootstrap intervals"):
            table = data.table(model.run_path, model.stamp, model.name, "relevance/bootstrap.csv")
            if table is None:
                continue
            missing = BOOTSTRAP_COLUMNS - set(table.columns)
            if missing:
                raise SemprobeError(f"bootstrap.csv lacks the columns {sorted(missing)}")
            wanted = source if source is not None else primary_source(model)
            keep = (table["superclasses"] == wanted) | (table["statistic"] == "top1")
            found[key] = table[keep].reset_index(drop=True)
    return found


def curve_bars(boots: dict[str, pd.DataFrame], label: dict[str, str]) -> dict[str, pd.DataFrame]:
    """The K-curve rows of each bootstrap, under the curve's legend name ``label[key]``."""
    return {label[k]: b[b["statistic"] == "curve_mean"] for k, b in boots.items()}


def first(boot: pd.DataFrame, statistic: str) -> pd.Series | None:
    """The interval of ``statistic`` (at the run's K), or None when the bootstrap lacks it."""
    found = boot[boot["statistic"] == statistic]
    return found.iloc[0] if len(found) else None


def interval(row: pd.Series | None, signed: bool = False) -> str:
    """``estimate [low, high]`` to three decimals; ``-`` when there is none."""
    if row is None or any(math.isnan(float(row[c])) for c in ("estimate", "low", "high")):
        return "-"
    form = "{:+.3f}" if signed else "{:.3f}"
    return f"{form.format(row['estimate'])} [{form.format(row['low'])}, {form.format(row['high'])}]"


def verdict(row: pd.Series) -> str:
    """``established`` when the interval excludes 0, else ``not established``."""
    return (
        "established" if established(float(row["low"]), float(row["high"])) else ("not established")
    )


def at_k(boot: pd.DataFrame) -> dict[str, object]:
    """A model's intervals at the run's K as the views' table columns."""
    lift = first(boot, "lift_vs_random_init")
    return {
        "resamples": int(boot["n"].max()),
        "relevance mean": interval(first(boot, "relevance_mean")),
        "top1": interval(first(boot, "top1")),
        "lift vs random init": interval(lift, signed=True),
        "lift": "" if lift is None else verdict(lift),
    }


def lift_difference(a: data.ModelData, b: data.ModelData) -> pd.Series | None:
    """``a``'s lift minus ``b``'s, paired over one run's resamples (``lift_differences.csv``).

    Only two models of the same run share resamples; the row is oriented as ``a - b`` (the run
    stores each pair once) against ``a``'s primary grouping. None when the run has no such row.
    """
    if a.run_path != b.run_path:
        return None
    table = data.run_table(a.run_path, a.stamp, "lift_differences.csv")
    if table is None:
        return None
    missing = DIFFERENCE_COLUMNS - set(table.columns)
    if missing:
        raise SemprobeError(f"lift_differences.csv lacks the columns {sorted(missing)}")
    rows = table[table["superclasses"] == primary_source(a)]
    same = rows[(rows["model"] == a.name) & (rows["other"] == b.name)]
    if len(same):
        return same.iloc[0]
    swapped = rows[(rows["model"] == b.name) & (rows["other"] == a.name)]
    if not len(swapped):
        return None
    row = swapped.iloc[0].copy()
    row["estimate"], row["low"], row["high"] = -row["estimate"], -row["high"], -row["low"]
    row["model"], row["other"] = a.name, b.name
    return row
