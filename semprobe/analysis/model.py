"""The relevance procedure for one model, and for a model with its random-init twin."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from semprobe.analysis.bootstrap import (
    Bootstrap,
    bootstrap_relevance,
    bootstrap_summary,
    with_lift,
    write_bootstrap,
)
from semprobe.analysis.groupings import Grouping, resolve_groupings
from semprobe.analysis.inputs import fit_probe, standardized_inputs
from semprobe.analysis.settings import RelevanceSettings
from semprobe.atomic import atomic_path, write_json
from semprobe.checkpoint import LoadedModel, random_init_model
from semprobe.concepts import feature_concepts, simplex_concepts
from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions, features
from semprobe.features import FeatureSet
from semprobe.graph import (
    FeatureCategoryGraph,
    sem_feature_name,
    to_networkx,
    top_k_graph,
    two_neighbours,
    write_graphml,
)
from semprobe.model import SEMModel
from semprobe.probe import SparseLogisticProbe
from semprobe.relevance import relevance_curve, relevance_with_null
from semprobe.rundir import link_or_copy, model_name
from semprobe.simplex_information import keep_information
from semprobe.simplex_major import SIMPLEX_MAJOR_FILE, write_simplex_major


@dataclass
class ModelResult:
    """What the table and the comparison need from one analysed model.

    ``curve`` is the relevance-vs-K curve against the primary grouping; ``curves`` holds one per
    grouping, keyed by source. ``bootstrap`` holds the resamples' replicates when
    ``settings.bootstrap`` asked for them.
    """

    name: str
    summary: dict[str, Any]
    curve: pd.DataFrame
    concepts: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    bootstrap: Bootstrap | None = None


def _representation(settings: RelevanceSettings, model: SEMModel) -> str:
    if settings.representation == "auto":
        return "sem" if model.spec.has_sem else "backbone"
    if settings.representation in ("sem", "logits") and not model.spec.has_sem:
        raise SemprobeError(
            f"--representation {settings.representation} needs a SEM model; this one has no "
            "embedder (use backbone)"
        )
    return settings.representation


def analyse_model(
    name: str,
    model: SEMModel,
    options: ExtractionOptions,
    settings: RelevanceSettings,
    out: Path,
    groupings: list[Grouping] | None = None,
    checkpoint: str | None = None,
) -> ModelResult:
    """Run the whole relevance procedure for one model and write ``out/<name>/``.

    ``groupings`` (default: resolved from ``settings.superclasses``) are scored on the same W_K;
    the first is the primary one.
    """
    train, test = features(model, options, "train"), features(model, options, "test")
    class_names = train.class_names
    if groupings is None:
        groupings = resolve_groupings(
            settings.superclass_sources,
            class_names,
            train.superclass_of,
            train.manifest["dataset"]["name"],
            settings.synsets,
        )
    primary = groupings[0]
    representation = _representation(settings, model)
    tau = settings.tau if settings.tau is not None else model.spec.tau
    n_features = model.feat_dim if representation == "backbone" else model.spec.sem_width
    if settings.k > n_features:
        raise SemprobeError(f"K = {settings.k} is larger than the {n_features} features")
    folder = out / name
    rel = folder / "relevance"
    rel.mkdir(parents=True, exist_ok=True)
    x_train, x_test, scaling = standardized_inputs(
        train, test, representation, tau, settings.standardize
    )
    weights, probe_stats, probe = _fit_and_save_probe(
        x_train, x_test, train, test, settings, options.device, rel / "probe.npz", scaling
    )
    graph = top_k_graph(weights, settings.k, rule=settings.rule)
    ks = [k for k in range(1, settings.k_max + 1) if k <= n_features]
    tests, curves = _score_groupings(graph, weights, groupings, settings, ks)
    curves[primary.source].to_csv(rel / "curve.csv", index=False)
    if len(groupings) > 1:
        pd.concat(
            [c.assign(superclasses=source) for source, c in curves.items()], ignore_index=True
        ).to_csv(rel / "curves_by_superclasses.csv", index=False)
    vocab = model.spec.vocab if representation in ("sem", "logits") else None
    concepts = _write_graph(
        rel, graph, class_names, primary.labels, vocab, settings.concepts, settings.synsets
    )
    if test.logits is not None:
        link_or_copy(test.directory / "logits.npy", folder / "logits.npy")
        # Computed here, once, so that the dashboard's first paint at L = 5000 does not wait
        # for it (seconds); the dashboard and `semprobe report` read the table back.
        keep_information(
            folder,
            test.logits,
            model.spec.num_simplices,
            model.spec.vocab,
            test.labels,
            class_names,
            dict(zip(class_names, primary.labels, strict=True)),
        )
        if settings.simplex_copy:
            write_simplex_major(
                test.logits,
                model.spec.num_simplices,
                model.spec.vocab,
                folder / SIMPLEX_MAJOR_FILE,
            )
    summary = {
        "model": name,
        "checkpoint": checkpoint,
        "spec": model.spec.to_dict(),
        "fingerprint": train.manifest["key"]["model_fingerprint"],
        "dataset": options.dataset,
        "transform": train.transform,
        "representation": representation,
        "tau": tau if representation == "sem" else None,
        "n_features": n_features,
        "n_train": len(train.labels),
        "n_test": len(test.labels),
        "probe": probe_stats,
        **_relevance_entries(tests, groupings),
        "settings": _plain(asdict(settings)),
    }
    write_json(
        folder / "model.json",
        {k: summary[k] for k in ("model", "checkpoint", "spec", "fingerprint", "transform")},
    )
    boot = None
    if settings.bootstrap is not None:
        inputs = (x_train, train.labels, x_test, test.labels)
        boot = _bootstrap(rel, inputs, groupings, settings, ks, options.device, probe)
        summary["bootstrap"] = bootstrap_summary(boot, settings.k)
    write_json(rel / "summary.json", summary)
    return ModelResult(name, summary, curves[primary.source], concepts, curves, boot)


def _fit_and_save_probe(
    x_train: np.ndarray,
    x_test: np.ndarray,
    train: FeatureSet,
    test: FeatureSet,
    settings: RelevanceSettings,
    device: str,
    path: Path,
    scaling: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, dict[str, Any], SparseLogisticProbe]:
    """The probe's ``C x F`` weights (zero rows for classes absent from train), stats, probe.

    ``probe.npz`` holds the weights, the intercept and, for standardised inputs, their
    ``input_mean`` and ``input_std``: with them the probe can be applied to edited inputs
    (:mod:`semprobe.interventions`).
    """
    probe, stats = fit_probe(x_train, train.labels, x_test, test.labels, settings, device)
    weights = np.zeros((len(train.class_names), probe.coef_.shape[1]), dtype=np.float64)
    weights[np.asarray(probe.classes_, dtype=np.int64)] = probe.coef_
    arrays: dict[str, Any] = {}  # Any: np.savez's own keywords would otherwise clash
    if scaling is not None:
        arrays = {"input_mean": scaling[0], "input_std": scaling[1]}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(
            tmp,
            coef=weights.astype(np.float32),
            intercept=np.asarray(probe.intercept_, dtype=np.float32),
            classes=np.asarray(probe.classes_),
            **arrays,
        )
    return weights, stats, probe


def _bootstrap(
    rel: Path,
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    groupings: list[Grouping],
    settings: RelevanceSettings,
    ks: list[int],
    device: str,
    probe: SparseLogisticProbe,
) -> Bootstrap:
    """The bootstrap of the probe, W_K and relevance, written as ``rel/bootstrap*.csv``."""
    x_train, y_train, x_test, y_test = inputs
    labels = {g.source: g.labels for g in groupings}
    boot = bootstrap_relevance(
        x_train,
        y_train,
        x_test,
        y_test,
        len(groupings[0].labels),
        labels,
        settings,
        ks,
        device=device,
        full=probe,
    )
    write_bootstrap(rel, boot)
    return boot


def _relevance_entries(
    tests: dict[str, dict[str, Any]], groupings: list[Grouping]
) -> dict[str, Any]:
    """The summary's relevance: the primary grouping's, and every grouping's by source."""
    primary = groupings[0]
    return {
        "relevance": tests[primary.source],
        "superclasses": primary.report,
        "relevance_by_superclasses": {
            g.source: {"relevance": tests[g.source], "superclasses": g.report} for g in groupings
        },
    }


def _score_groupings(
    graph: FeatureCategoryGraph,
    weights: np.ndarray,
    groupings: list[Grouping],
    settings: RelevanceSettings,
    ks: list[int],
) -> tuple[dict[str, dict[str, Any]], dict[str, pd.DataFrame]]:
    """The relevance test at K and the curve over ``ks``, against each grouping."""
    tests, curves = {}, {}
    for grouping in groupings:
        tests[grouping.source] = relevance_with_null(
            graph,
            grouping.labels,
            settings.k,
            rule=settings.rule,
            multiplicity=settings.multiplicity,
            n_permutations=settings.permutations,
            seed=settings.seed,
        ).as_dict()
        curves[grouping.source] = relevance_curve(
            weights,
            grouping.labels,
            ks,
            rule=settings.rule,
            multiplicity=settings.multiplicity,
            n_permutations=min(settings.permutations, 200),
            seed=settings.seed,
        )
    return tests, curves


def _write_graph(
    rel: Path,
    graph: FeatureCategoryGraph,
    class_names: list[str],
    superclasses: list[str],
    vocab: int | None,
    with_concepts: bool,
    synsets: str | None = None,
) -> pd.DataFrame:
    """W_K as GraphML and tidy tables, and (``with_concepts``) the feature concept table."""
    n_features = graph.n_features
    feature_names = [sem_feature_name(j, vocab) if vocab else f"f{j}" for j in range(n_features)]
    superclass_of = dict(zip(class_names, superclasses, strict=True))
    write_graphml(
        to_networkx(graph, class_names, feature_names, superclass_of), rel / "graph.graphml"
    )
    _write_tables(rel, graph, class_names, superclasses, feature_names)
    if not with_concepts:
        return pd.DataFrame()
    concepts = feature_concepts(graph, class_names, superclasses, vocab, synsets=synsets)
    concepts.insert(1, "name", [feature_names[f] for f in concepts["feature"]])
    concepts.to_csv(rel / "feature_concepts.csv", index=False)
    if vocab:
        simplex_concepts(concepts).to_csv(rel / "simplex_concepts.csv", index=False)
    return concepts


def _write_tables(
    rel: Path,
    graph: Any,
    class_names: list[str],
    superclasses: list[str],
    feature_names: list[str],
) -> None:
    order = np.lexsort((graph.feature, -graph.weight, graph.category))
    cat_feat = pd.DataFrame(
        {
            "category": [class_names[c] for c in graph.category[order]],
            "superclass": [superclasses[c] for c in graph.category[order]],
            "feature": graph.feature[order],
            "feature_name": [feature_names[f] for f in graph.feature[order]],
            "weight": graph.weight[order],
        }
    )
    cat_feat.insert(2, "rank", cat_feat.groupby("category", sort=False).cumcount() + 1)
    cat_feat.to_csv(rel / "category_features.csv", index=False)
    shared = two_neighbours(graph, multiplicity=True)
    i, j = np.nonzero(shared)
    pd.DataFrame(
        {
            "category": [class_names[a] for a in i],
            "neighbour": [class_names[b] for b in j],
            "shared_features": shared[i, j],
            "same_superclass": [
                superclasses[a] == superclasses[b] for a, b in zip(i, j, strict=True)
            ],
        }
    ).to_csv(rel / "category_neighbours.csv", index=False)


def _plain(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj if not isinstance(obj, dict) else {k: _plain(v) for k, v in obj.items()}


def analyse_with_reference(
    name: str,
    loaded: LoadedModel,
    options: ExtractionOptions,
    settings: RelevanceSettings,
    out: Path,
    groupings: list[Grouping],
    taken: set[str],
) -> list[ModelResult]:
    """Analyse a model and, if ``settings.reference`` asks, its random-init twin.

    The trained model's summary then records ``lift_vs_random_init``: its relevance mean minus
    the reference's, measured by the same procedure on the same data (for each grouping).
    """
    result = analyse_model(name, loaded.model, options, settings, out, groupings, str(loaded.path))
    if settings.reference != "random-init":
        return [result]
    reference = analyse_model(
        model_name(f"{name}-random-init", taken),
        random_init_model(loaded.spec, settings.seed),
        options,
        settings,
        out,
        groupings,
        None,
    )
    for source, entry in result.summary["relevance_by_superclasses"].items():
        trained_mean = entry["relevance"]["mean"]
        reference_mean = reference.summary["relevance_by_superclasses"][source]["relevance"]["mean"]
        lift = None
        if trained_mean is not None and reference_mean is not None:
            lift = trained_mean - reference_mean
        entry["lift_vs_random_init"] = lift
    primary = result.summary["relevance_by_superclasses"][groupings[0].source]
    result.summary["lift_vs_random_init"] = primary["lift_vs_random_init"]
    result.summary["reference"] = {
        "model": reference.name,
        "relevance_mean": reference.summary["relevance"]["mean"],
    }
    if result.bootstrap is not None and reference.bootstrap is not None:
        result.bootstrap = with_lift(result.bootstrap, reference.bootstrap)
        write_bootstrap(out / name / "relevance", result.bootstrap)
        result.summary["bootstrap"] = bootstrap_summary(result.bootstrap, settings.k)
    write_json(out / name / "relevance" / "summary.json", result.summary)
    return [result, reference]
