"""The comparison tables of analysed models, and their names."""

from __future__ import annotations

import pandas as pd

from semprobe.analysis.model import ModelResult


def comparison_table(results: list[ModelResult]) -> pd.DataFrame:
    """One row per analysed model: the numbers the CLI prints."""
    rows = []
    for r in results:
        s, rel = r.summary, r.summary["relevance"]
        rows.append(
            {
                "model": r.name,
                "features": s["representation"] + (f"@tau={s['tau']:g}" if s["tau"] else ""),
                "n_features": s["n_features"],
                "top1": s["probe"]["top1"],
                "top5": s["probe"]["top5"],
                "sparsity": s["probe"]["sparsity"],
                "K": rel["k"],
                "relevance_sum": rel["total"],
                "relevance_mean": rel["mean"],
                "isolated": rel["n_isolated"],
                "chance": rel["chance"],
                "null_mean": rel["null_mean"],
                "z": rel["z"],
                "p": rel["p"],
                "lift_vs_random_init": s.get("lift_vs_random_init"),
            }
        )
    return pd.DataFrame(rows)


def superclass_table(results: list[ModelResult]) -> pd.DataFrame:
    """One row per analysed model and superclass source: relevance of the same W_K under each."""
    rows = []
    for r in results:
        for source, entry in r.summary["relevance_by_superclasses"].items():
            rel, grouping = entry["relevance"], entry["superclasses"]
            rows.append(
                {
                    "model": r.name,
                    "superclasses": source,
                    "groups": grouping["n_groups"],
                    "ari_vs_coarse": grouping.get("ari"),
                    "relevance_mean": rel["mean"],
                    "chance": rel["chance"],
                    "null_mean": rel["null_mean"],
                    "z": rel["z"],
                    "p": rel["p"],
                    "lift_vs_random_init": entry.get("lift_vs_random_init"),
                }
            )
    return pd.DataFrame(rows)
