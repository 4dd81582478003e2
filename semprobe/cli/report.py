"""What the commands print: tables, the relevance report, notes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from semprobe.analysis import ModelResult
    from semprobe.studies import StudyResult


def print_table(table: pd.DataFrame, precision: str = "{:.4g}", **to_string: Any) -> None:
    """Print a table in full, numbers to ``precision``."""
    import pandas as pd

    with pd.option_context(
        "display.width", 200, "display.max_columns", 30, "display.float_format", precision.format
    ):
        print(table.to_string(**to_string))


def print_relevance_report(
    table: pd.DataFrame,
    results: Sequence[ModelResult],
    out: str | Path | None,
    by_superclasses: pd.DataFrame | None = None,
) -> None:
    """The comparison table, a note on feature counts, and the most coherent simplices.

    With several superclass sources, ``by_superclasses`` (one row per model and source) follows.
    """
    from semprobe.cli.intervals import print_bootstrap_report
    from semprobe.concepts import simplex_concepts

    print_table(table, index=False)
    if by_superclasses is not None and by_superclasses["superclasses"].nunique() > 1:
        print("\nthe same W_K against each superclass source:")
        print_table(by_superclasses, index=False)
    if table["n_features"].nunique() > 1:
        print(
            "note: these models have different feature counts "
            f"({', '.join(map(str, sorted(table['n_features'].unique())))}); relevance depends "
            "on the number of features and the sparsity, so compare against each model's "
            "null and random-init reference rather than across models directly."
        )
    for result in results:
        concepts = result.concepts
        if concepts.empty or (concepts["simplex"] < 0).all():
            continue
        print(f"\nmost coherent simplices of {result.name}:")
        for row in simplex_concepts(concepts).head(5).itertuples():
            print(f"  simplex {row.simplex}: {row.labels}")
    print_bootstrap_report(results, print_table)
    print(f"\nrun directory: {out}")


def result_notes(result: StudyResult) -> list[str]:
    """The notes a study recorded in its run directory (e.g. a model without SEM skipped)."""
    if result.out is None:
        return []
    run = json.loads((result.out / "run.json").read_text())
    return list(run["parameters"].get("notes", []))
