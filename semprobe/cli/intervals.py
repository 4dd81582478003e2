"""What ``semprobe relevance --bootstrap N`` prints: intervals, and which lifts are established."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from semprobe.analysis import ModelResult
    from semprobe.studies import SeedStudyResult

NOT_ESTABLISHED = "not established"
TablePrinter = Callable[..., None]


def interval_text(estimate: Any, low: Any, high: Any, signed: bool = False) -> str:
    """``0.312 [0.271, 0.350]``; ``-`` where there is no value.

    Examples
    --------
    >>> interval_text(0.3124, 0.2711, 0.35, signed=True)
    '+0.312 [+0.271, +0.350]'
    """
    values = [estimate, low, high]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return "-"
    form = "{:+.3f}" if signed else "{:.3f}"
    return f"{form.format(estimate)} [{form.format(low)}, {form.format(high)}]"


def verdict(low: Any, high: Any) -> str:
    """``established`` when the interval of a difference excludes 0, else ``not established``."""
    from semprobe.bootstrap import established

    if low is None or high is None:
        return NOT_ESTABLISHED
    return "established" if established(float(low), float(high)) else NOT_ESTABLISHED


def bootstrap_table(results: Sequence[ModelResult]) -> pd.DataFrame:
    """One row per bootstrapped model and superclass source: the intervals at K, as text."""
    import pandas as pd

    rows = []
    for result in results:
        if result.bootstrap is None:
            continue
        table = result.bootstrap.intervals()
        top1 = table[table["statistic"] == "top1"].iloc[0]
        at_k = table[table["statistic"].isin(["relevance_mean", "lift_vs_random_init"])]
        for source in at_k.loc[at_k["statistic"] == "relevance_mean", "superclasses"]:
            at = at_k[at_k["superclasses"] == source]
            rel = at[at["statistic"] == "relevance_mean"].iloc[0]
            lift = at[at["statistic"] == "lift_vs_random_init"]
            row = {
                "model": result.name,
                "superclasses": source,
                "relevance_mean": interval_text(rel.estimate, rel.low, rel.high),
                "top1": interval_text(top1.estimate, top1.low, top1.high),
            }
            if len(lift):
                one = lift.iloc[0]
                row["lift_vs_random_init"] = interval_text(one.estimate, one.low, one.high, True)
                row["lift"] = verdict(one.low, one.high)
            rows.append(row)
    return pd.DataFrame(rows).fillna("")


def print_bootstrap_report(results: Sequence[ModelResult], print_table: TablePrinter) -> None:
    """The intervals of every bootstrapped model, and the differences of lifts between models.

    ``print_table`` is :func:`semprobe.cli.report.print_table` (passed in: the report module
    calls this one).
    """
    from semprobe.analysis import lift_differences

    booted = [r for r in results if r.bootstrap is not None]
    if not booted:
        return
    boot = booted[0].bootstrap
    assert boot is not None
    print(
        f"\nbootstrap: {boot.confidence:.0%} percentile intervals from {boot.n} resamples "
        f"(seed {boot.seed}); a lift whose interval contains 0 is {NOT_ESTABLISHED}:"
    )
    print_table(bootstrap_table(booted), index=False)
    outside = [f"{r.name}: {', '.join(names)}" for r in booted if (names := _outside(r))]
    if outside:
        print(
            "note: these intervals do not contain their full-data estimate, so the statistic "
            "moves under resampling (an unstable top-K choice, or a probe that sees fewer "
            f"distinct images); read them with care: {'; '.join(outside)}"
        )
    differences = lift_differences({r.name: r.bootstrap for r in booted if r.bootstrap})
    if not len(differences):
        return
    print("\ndifference of lifts over random-init (paired over the resamples):")
    for row in differences.itertuples(index=False):
        text = interval_text(row.estimate, row.low, row.high, signed=True)
        print(
            f"  {row.model} - {row.other} ({row.superclasses}): {text} {verdict(row.low, row.high)}"
        )


def _outside(result: ModelResult) -> list[str]:
    """The statistics at K (and top-1) whose interval does not contain the estimate."""
    assert result.bootstrap is not None
    table = result.bootstrap.intervals()
    at_k = table[table["statistic"].isin(["relevance_mean", "lift_vs_random_init", "top1"])]
    names = []
    for row in at_k.itertuples(index=False):
        if row.n and not row.low <= row.estimate <= row.high:
            names.append(
                f"{row.statistic}" + (f" ({row.superclasses})" if row.superclasses else "")
            )
    return names


def print_seed_report(result: SeedStudyResult, print_table: TablePrinter) -> None:
    """A multi-seed study: mean, std and per-seed values, and the paired lift differences."""

    summary = result.summary
    shown = summary[summary["analysis"] == "relevance"]
    if not len(shown):
        shown = summary
    print(f"across seeds {', '.join(str(s) for s in result.results)} (mean, std, per seed):")
    print_table(shown.drop(columns=["analysis"]), index=False, na_rep="-")
    differences = result.lift_differences
    if len(differences):
        print(
            f"\ndifference of lifts over random-init across seeds (paired by seed, "
            f"{result.confidence:.0%} Student-t interval):"
        )
        for row in differences.itertuples(index=False):
            text = interval_text(row.mean, row.low, row.high, signed=True)
            print(
                f"  {row.model} - {row.other} ({row.superclasses}): {text} "
                f"{verdict(row.low, row.high)} ({row.n_seeds} seeds)"
            )
    print(f"\nrun directories: {result.out}/seed-<s>; tables across seeds: {result.out}")
