"""Name what each SEM feature means: the categories it predicts and their shared concept.

For every feature kept in W_K, the categories joined to it (strongest first), their superclasses,
and a human-readable label: the WordNet lowest common hypernym of those categories (e.g.
maple/oak/pine/willow -> ``tree.n.01``) with its depth, or ``mixed`` when they share nothing
below a shallow depth. Where the class names are not WordNet nouns (e.g. ``synthetic``) or
WordNet is not set up, the label is the superclass the categories share, or ``mixed``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from semprobe.errors import SemprobeError
from semprobe.graph import FeatureCategoryGraph


def _wordnet_labeller(class_names: Sequence[str], synsets: str | Path | None = None):
    """A function categories -> (label, depth) using WordNet, or None when it cannot apply.

    ``synsets`` is the user's ``class,synset`` overrides file, used for the labels too.
    """
    try:
        from semprobe.wordnet import class_synsets, concept_label

        # Every class must resolve, or we do not use WordNet.
        class_synsets(list(class_names), synsets)
    except (SemprobeError, ImportError, LookupError):
        return None
    return functools.partial(concept_label, overrides_csv=synsets)


def feature_concepts(
    graph: FeatureCategoryGraph,
    class_names: Sequence[str],
    superclasses: Sequence[str],
    vocab: int | None = None,
    use_wordnet: bool = True,
    synsets: str | Path | None = None,
) -> pd.DataFrame:
    """One row per feature with at least one edge in W_K.

    Parameters
    ----------
    graph:
        W_K from :func:`semprobe.graph.top_k_graph`.
    class_names, superclasses:
        Name and superclass of each category (aligned with W's rows).
    vocab:
        V for SEM features (adds ``simplex`` and ``vertex`` columns), None for others.
    use_wordnet:
        Try WordNet concept labels (falls back to shared superclasses).
    synsets:
        Optional ``class,synset`` overrides file (``--synsets``) for the WordNet labels.

    Returns
    -------
    pandas.DataFrame
        Columns ``feature, simplex, vertex, categories, superclasses, n_categories, coherent,
        concept, concept_depth, concept_source``; ``coherent`` is True when the feature's
        categories (two or more) all share one superclass.
    """
    labeller = _wordnet_labeller(class_names, synsets) if use_wordnet else None
    rows = []
    order = np.lexsort((-graph.weight, graph.feature))
    for feature in np.unique(graph.feature):
        idx = order[graph.feature[order] == feature]
        cats = [class_names[c] for c in graph.category[idx]]
        sups = [superclasses[c] for c in graph.category[idx]]
        coherent = len(cats) > 1 and len(set(sups)) == 1
        if labeller is not None:
            label, depth = labeller(cats)
            source = "wordnet"
        else:
            label = sups[0] if len(set(sups)) == 1 else "mixed"
            depth, source = -1, "superclass"
        row = {
            "feature": int(feature),
            "simplex": int(feature) // vocab if vocab else -1,
            "vertex": int(feature) % vocab if vocab else -1,
            "categories": ";".join(cats),
            "superclasses": ";".join(sups),
            "n_categories": len(cats),
            "coherent": coherent,
            "concept": label,
            "concept_depth": int(depth),
            "concept_source": source,
        }
        rows.append(row)
    columns = [
        "feature",
        "simplex",
        "vertex",
        "categories",
        "superclasses",
        "n_categories",
        "coherent",
        "concept",
        "concept_depth",
        "concept_source",
    ]
    return pd.DataFrame(rows, columns=columns)


def simplex_concepts(features: pd.DataFrame) -> pd.DataFrame:
    """Per simplex: its kept vertices' labels side by side and a coherence score.

    ``coherence`` counts the vertices whose categories (two or more) share a superclass; simplices
    are sorted most coherent first, then by how many vertices were kept.
    """
    sem = features[features["simplex"] >= 0]
    rows = []
    for simplex, group in sem.groupby("simplex", sort=True):
        group = group.sort_values("vertex")
        labels = " | ".join(
            f"v{v}: {c}" for v, c in zip(group["vertex"], group["concept"], strict=True)
        )
        rows.append(
            {
                "simplex": int(simplex),
                "n_vertices_kept": len(group),
                "coherence": int(group["coherent"].sum()),
                "n_categories": int(group["n_categories"].sum()),
                "labels": labels,
            }
        )
    table = pd.DataFrame(
        rows, columns=["simplex", "n_vertices_kept", "coherence", "n_categories", "labels"]
    )
    return table.sort_values(
        ["coherence", "n_vertices_kept", "simplex"], ascending=[False, False, True]
    ).reset_index(drop=True)
