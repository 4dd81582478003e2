"""The relevance analysis of one or more models, end to end: ``semprobe relevance``.

For each model: cached features (train and test) -> the probe's representation (SEM output at
``tau``, or backbone features for a model without SEM) -> sparse probe on train, accuracy on test
-> W_K, relevance with its permutation null, the relevance-vs-K curve, feature concepts -> files
in the run directory (see :mod:`semprobe.rundir`). With ``reference="random-init"`` the same
architecture at a seeded random initialisation goes through the same procedure, and the trained
model's lift over it is reported beside the null model.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning

from semprobe.atomic import write_json
from semprobe.checkpoint import LoadedModel, random_init_model
from semprobe.concepts import feature_concepts, simplex_concepts
from semprobe.errors import SemprobeError
from semprobe.features import FeatureSet
from semprobe.graph import (
    Rule,
    sem_feature_name,
    to_networkx,
    top_k_graph,
    two_neighbours,
    write_graphml,
)
from semprobe.model import SEMModel
from semprobe.pipeline import ExtractionOptions, features
from semprobe.probe import SparseLogisticProbe, top_k_accuracy
from semprobe.relevance import relevance_curve, relevance_with_null
from semprobe.rundir import link_or_copy
from semprobe.sem import sem_softmax
from semprobe.validation import check_tau

REPRESENTATIONS = ("auto", "sem", "backbone", "logits")


@dataclass(frozen=True)
class RelevanceSettings:
    """Parameters of the relevance procedure (all recorded in each summary.json).

    ``superclasses`` is one source (``coarse``, ``wordnet[:DEPTH]``, ``file:PATH.csv``) or several
    separated by commas: the probe and W_K are fitted once and scored against each grouping; the
    first is the primary one (graph tables, concept labels, ``curve.csv``).
    """

    superclasses: str = "coarse"
    representation: str = "auto"
    tau: float | None = None  # None: the model's pre-training tau
    k: int = 10
    k_max: int = 50
    rule: Rule = "category"
    multiplicity: bool = False
    l1: float | str = 1e-3
    l2: float = 0.0
    epochs: int = 100
    permutations: int = 1000
    seed: int = 0
    reference: str | None = None  # "random-init"
    concepts: bool = True
    standardize: bool = True

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise SemprobeError(
                f"unknown representation {self.representation!r}; choose one of "
                f"{', '.join(REPRESENTATIONS)}"
            )
        if self.tau is not None:
            check_tau(self.tau)
        if self.k < 1 or self.k_max < 1:
            raise SemprobeError(f"K must be >= 1, got k={self.k}, k_max={self.k_max}")
        if self.reference not in (None, "random-init"):
            raise SemprobeError(f"unknown reference {self.reference!r}; use random-init")
        from semprobe.taxonomy import parse_superclass_source

        sources = self.superclass_sources
        if "" in sources or len(set(sources)) != len(sources):
            raise SemprobeError(
                f"superclasses {self.superclasses!r}: give one or more distinct sources "
                "separated by commas"
            )
        for source in sources:
            parse_superclass_source(source)  # a typo fails here, before any model is trained

    @property
    def superclass_sources(self) -> list[str]:
        """The superclass sources in order, primary first."""
        return [s.strip() for s in self.superclasses.split(",")]


@dataclass(frozen=True)
class Grouping:
    """The classes of a dataset grouped by one superclass source."""

    source: str
    labels: list[str]  # superclass of each class, in class order
    report: dict[str, Any]  # see :func:`semprobe.taxonomy.grouping_report`


@dataclass
class ModelResult:
    """What the table and the comparison need from one analysed model.

    ``curve`` is the relevance-vs-K curve against the primary grouping; ``curves`` holds one per
    grouping, keyed by source.
    """

    name: str
    summary: dict[str, Any]
    curve: pd.DataFrame
    concepts: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)


def resolve_groupings(
    sources: Sequence[str], class_names: list[str], dataset_superclasses: dict[str, str] | None
) -> list[Grouping]:
    """:func:`resolve_superclasses` for each source, in order."""
    groupings = []
    for source in sources:
        labels, report = resolve_superclasses(source, class_names, dataset_superclasses)
        groupings.append(Grouping(source, labels, report))
    return groupings


def resolve_superclasses(
    source: str, class_names: list[str], dataset_superclasses: dict[str, str] | None
) -> tuple[list[str], dict[str, Any]]:
    """Superclass of each class from a ``--superclasses`` source, and a report on the grouping."""
    from semprobe import taxonomy

    parsed = taxonomy.parse_superclass_source(source)
    if parsed.kind == "coarse":
        if dataset_superclasses is None:
            raise SemprobeError(
                "this dataset has no coarse superclasses; use --superclasses wordnet[:DEPTH] "
                "or file:PATH.csv"
            )
        mapping = dataset_superclasses
    else:
        mapping = taxonomy.superclasses_from_source(parsed, class_names)
    labels = [mapping[c] for c in class_names]
    if len(set(labels)) < 2:
        raise SemprobeError(
            f"superclass source {source!r} puts every class in one superclass: relevance is "
            "undefined"
        )
    report = taxonomy.grouping_report(
        mapping, dataset_superclasses if parsed.kind != "coarse" else None
    )
    report["source"] = source
    return labels, report


def _representation(settings: RelevanceSettings, model: SEMModel) -> str:
    if settings.representation == "auto":
        return "sem" if model.spec.has_sem else "backbone"
    if settings.representation in ("sem", "logits") and not model.spec.has_sem:
        raise SemprobeError(
            f"--representation {settings.representation} needs a SEM model; this one has no "
            "embedder (use backbone)"
        )
    return settings.representation


def probe_inputs(
    train: FeatureSet, test: FeatureSet, representation: str, tau: float, standardize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The probe's train and test matrices for one representation.

    ``sem`` is the SEM output at ``tau``; ``backbone`` the backbone features (f_base); ``logits``
    the embedder's pre-softmax output. With ``standardize`` every column is centred and scaled by
    the train split's mean and std, so that one L1 strength means the same for every
    representation and tau (SEM outputs near 1/V would otherwise be zeroed by any L1 that suits
    backbone features); the probe's weights are then in units of standard deviations.

    Matrices larger than :data:`semprobe.features.IN_MEMORY_LIMIT` (as float32) are computed block
    by block into float16 files in the cache directory and returned memory-mapped, so the
    paper-scale 50,000 x 65,000 case never sits in memory.
    """
    from semprobe import features as features_module

    width = _width(train, representation)
    large = len(train.labels) * width * 4 > features_module.IN_MEMORY_LIMIT
    if not large:
        x_train = _block(train, representation, tau, 0, len(train.labels))
        x_test = _block(test, representation, tau, 0, len(test.labels))
        if not standardize:
            return x_train, x_test
        mean = x_train.mean(axis=0, dtype=np.float64).astype(np.float32)
        std = x_train.std(axis=0, dtype=np.float64).astype(np.float32) + np.float32(1e-6)
        return (x_train - mean) / std, (x_test - mean) / std
    name = representation + (f"_tau{tau:g}" if representation == "sem" else "")
    name += "_std" if standardize else ""
    mean = np.zeros(width, dtype=np.float32)
    std = np.ones(width, dtype=np.float32)
    if standardize:
        mean, std = _column_stats(train, representation, tau, width)
    return (
        _to_file(train, representation, tau, mean, std, train.directory / f"probe_{name}.npy"),
        _to_file(test, representation, tau, mean, std, test.directory / f"probe_{name}.npy"),
    )


def _width(fs: FeatureSet, representation: str) -> int:
    return int(
        fs.features.shape[1] if representation == "backbone" else fs.require_logits().shape[1]
    )


def _block(fs: FeatureSet, representation: str, tau: float, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of one representation, float32."""
    if representation == "backbone":
        return np.array(fs.features[start:stop], dtype=np.float32)
    logits = np.array(fs.require_logits()[start:stop], dtype=np.float32)
    if representation == "logits":
        return logits
    return sem_softmax(torch.from_numpy(logits), fs.num_simplices, fs.vocab, tau).numpy()


def _column_stats(
    fs: FeatureSet, representation: str, tau: float, width: int, rows: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std (float64 accumulation), one block of rows at a time."""
    total = np.zeros(width, dtype=np.float64)
    squares = np.zeros(width, dtype=np.float64)
    n = len(fs.labels)
    for start in range(0, n, rows):
        block = _block(fs, representation, tau, start, start + rows).astype(np.float64)
        total += block.sum(0)
        squares += (block * block).sum(0)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32) + np.float32(1e-6)


def _to_file(
    fs: FeatureSet,
    representation: str,
    tau: float,
    mean: np.ndarray,
    std: np.ndarray,
    path: Path,
    rows: int = 2048,
) -> np.ndarray:
    """``(x - mean) / std`` written once as a float16 ``.npy`` (atomically), memory-mapped."""
    from semprobe.atomic import atomic_path

    n = len(fs.labels)
    if not path.exists():
        with atomic_path(path, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, len(mean)))
            for start in range(0, n, rows):
                block = _block(fs, representation, tau, start, start + rows)
                out[start : start + rows] = (block - mean) / std
            out.flush()
            del out
    return np.load(path, mmap_mode="r")


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    settings: RelevanceSettings,
    device: str = "cpu",
) -> tuple[SparseLogisticProbe, dict[str, Any]]:
    """Fit the sparse probe and measure it on the test split."""
    probe = SparseLogisticProbe(
        l1=settings.l1,
        l2=settings.l2,
        max_epochs=settings.epochs,
        device=device,
        random_state=settings.seed,
    )
    with warnings.catch_warnings():
        # Convergence is recorded in the summary instead of being printed.
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(x_train, y_train)
    scores = probe.decision_function(x_test)
    coef = probe.coef_
    stats = {
        "top1": float(top_k_accuracy(y_test, scores, 1, classes=probe.classes_)),
        "top5": float(
            top_k_accuracy(y_test, scores, min(5, scores.shape[1]), classes=probe.classes_)
        ),
        "l1": float(getattr(probe, "l1_", settings.l1)),
        "l2": settings.l2,
        "sparsity": float(np.mean(coef == 0)),
        "nonzero_weights": int(np.count_nonzero(coef)),
        "features_used": int(np.count_nonzero(np.any(coef != 0, axis=0))),
        "passes": int(probe.n_iter_),
        "converged": bool(probe.converged_),
    }
    return probe, stats


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
        groupings = resolve_groupings(settings.superclass_sources, class_names, train.superclass_of)
    primary = groupings[0]
    representation = _representation(settings, model)
    tau = settings.tau if settings.tau is not None else model.spec.tau
    n_features = model.feat_dim if representation == "backbone" else model.spec.sem_width
    if settings.k > n_features:
        raise SemprobeError(f"K = {settings.k} is larger than the {n_features} features")
    x_train, x_test = probe_inputs(train, test, representation, tau, settings.standardize)
    probe, probe_stats = fit_probe(
        x_train, train.labels, x_test, test.labels, settings, options.device
    )
    weights = np.zeros((len(class_names), probe.coef_.shape[1]), dtype=np.float64)
    weights[np.asarray(probe.classes_, dtype=np.int64)] = probe.coef_

    folder = out / name
    rel = folder / "relevance"
    rel.mkdir(parents=True, exist_ok=True)
    vocab = model.spec.vocab if representation in ("sem", "logits") else None
    graph = top_k_graph(weights, settings.k, rule=settings.rule)
    ks = [k for k in range(1, settings.k_max + 1) if k <= n_features]
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
    curve = curves[primary.source]
    curve.to_csv(rel / "curve.csv", index=False)
    if len(groupings) > 1:
        pd.concat(
            [c.assign(superclasses=source) for source, c in curves.items()], ignore_index=True
        ).to_csv(rel / "curves_by_superclasses.csv", index=False)
    np.savez(
        rel / "probe.npz",
        coef=weights.astype(np.float32),
        intercept=np.asarray(probe.intercept_, dtype=np.float32),
        classes=np.asarray(probe.classes_),
    )
    feature_names = [sem_feature_name(j, vocab) if vocab else f"f{j}" for j in range(n_features)]
    superclass_of = dict(zip(class_names, primary.labels, strict=True))
    write_graphml(
        to_networkx(graph, class_names, feature_names, superclass_of), rel / "graph.graphml"
    )
    _write_tables(rel, graph, class_names, primary.labels, feature_names)
    concepts = pd.DataFrame()
    if settings.concepts:
        concepts = feature_concepts(graph, class_names, primary.labels, vocab)
        concepts.insert(1, "name", [feature_names[f] for f in concepts["feature"]])
        concepts.to_csv(rel / "feature_concepts.csv", index=False)
        if vocab:
            simplex_concepts(concepts).to_csv(rel / "simplex_concepts.csv", index=False)

    if test.logits is not None:
        link_or_copy(test.directory / "logits.npy", folder / "logits.npy")
    summary = {
        "model": name,
        "checkpoint": checkpoint,
        "spec": model.spec.to_dict(),
        "fingerprint": train.manifest["key"]["model_fingerprint"],
        "dataset": options.dataset,
        "representation": representation,
        "tau": tau if representation == "sem" else None,
        "n_features": n_features,
        "n_train": len(train.labels),
        "n_test": len(test.labels),
        "probe": probe_stats,
        "relevance": tests[primary.source],
        "superclasses": primary.report,
        "relevance_by_superclasses": {
            g.source: {"relevance": tests[g.source], "superclasses": g.report} for g in groupings
        },
        "settings": _plain(asdict(settings)),
    }
    write_json(
        folder / "model.json",
        {k: summary[k] for k in ("model", "checkpoint", "spec", "fingerprint")},
    )
    write_json(rel / "summary.json", summary)
    return ModelResult(name, summary, curve, concepts, curves)


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


def model_name(checkpoint: str | Path, taken: set[str]) -> str:
    """A directory-safe, unique name for a model, from its file name."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(checkpoint).stem) or "model"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


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
    write_json(out / name / "relevance" / "summary.json", result.summary)
    return [result, reference]


def thumbnails(dataset: Any, size: int = 32) -> np.ndarray:
    """The dataset's images as uint8 ``(N, size, size, 3)`` for the dashboard."""
    from PIL import Image

    out = np.empty((len(dataset), size, size, 3), dtype=np.uint8)
    for i in range(len(dataset)):
        image = dataset.image(i)
        if image.shape[:2] != (size, size):
            image = np.asarray(Image.fromarray(image).resize((size, size)))
        out[i] = image
    return out
