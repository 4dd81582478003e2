"""Each protocol for a list of checkpoints: features from the cache, tables, a run directory.

``run_knn``, ``run_linear_grid``, ``run_robustness`` and ``run_transfer`` are the commands
``semprobe knn``, ``linear-grid``, ``robustness`` and ``transfer`` from Python; the ``*_of``
functions do one model (a study calls them). Everything that can be checked without features
(settings, dataset names, folders, class intersections, label files) is checked before the
first checkpoint is loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from semprobe.analysis import probe_inputs
from semprobe.checkpoint import LoadedModel
from semprobe.errors import DatasetError, SemprobeError
from semprobe.extraction import ExtractionOptions, features, load, open_split
from semprobe.features import FeatureSet
from semprobe.protocols.knn import KNNSettings, knn_table
from semprobe.protocols.label_fraction import LabelSet, label_sets
from semprobe.protocols.linear_grid import LinearGridSettings, linear_grid
from semprobe.protocols.reports import Report, complete_tables, write_protocol_run
from semprobe.protocols.robustness import (
    EvalPart,
    FittedProbe,
    RobustnessSettings,
    eval_parts,
    part_record,
    plan_classes,
    resolve_representation,
    score_part,
)
from semprobe.protocols.rows import (
    FeatureRows,
    accuracies,
    column_stats,
    label_columns,
    probe_scores,
)
from semprobe.protocols.strengths import Selected, fit_selected, rows_of
from semprobe.protocols.transfer import TransferSettings, column_names, transfer_scores
from semprobe.rundir import model_name

Models = Mapping[str, tuple[LoadedModel, Path]]


@dataclass
class ProtocolRun:
    """What a protocol command produced: its tables, report and run directory."""

    protocol: str
    tables: dict[str, pd.DataFrame]
    report: Report
    out: Path


def check_dataset_name(name: str) -> str:
    """A dataset name that :func:`semprobe.data.open_dataset` knows, with an existing folder for
    the kinds that read one; checked without opening it (that may download)."""
    from semprobe.data import dataset_names

    kind, _, rest = name.partition(":")
    usages = {u.partition(":")[0]: u for u in dataset_names()}
    usage = usages.get(kind)
    takes_path = usage is not None and usage.endswith(":PATH")
    if usage is None or (takes_path and not rest):
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(usages.values())}")
    if takes_path and not Path(rest).expanduser().exists():
        raise DatasetError(f"{name}: {rest} does not exist")
    return name


def _named(checkpoints: Sequence[str | Path] | Mapping[str, str | Path]) -> dict[str, Path]:
    if isinstance(checkpoints, Mapping):
        return {str(k): Path(v) for k, v in checkpoints.items()}
    taken: set[str] = set()
    return {model_name(c, taken): Path(c) for c in checkpoints}


def _load_all(checkpoints: Any, options: ExtractionOptions) -> dict[str, tuple[LoadedModel, Path]]:
    named = _named(checkpoints)
    if not named:
        raise SemprobeError("give at least one checkpoint")
    return {name: (load(path, options), path) for name, path in named.items()}


def _parameters(settings: Any, options: ExtractionOptions, models: Models) -> dict[str, Any]:
    extraction = {
        k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(options).items()
    }
    return {
        "settings": dataclasses.asdict(settings),
        "extraction": extraction,
        "dataset": options.dataset,
        "checkpoints": {name: str(path) for name, (_, path) in models.items()},
    }


def _class_names(options: ExtractionOptions) -> list[str]:
    return list(open_split(options, "test").class_names)


# -- kNN and the linear grid -----------------------------------------------------------------------


def knn_of(name: str, train: FeatureSet, test: FeatureSet, settings: KNNSettings, device: str):
    """The kNN tables of one model's cached features."""
    return {"knn": knn_table(train, test, settings, name, device)}


def linear_grid_of(
    name: str, train: FeatureSet, test: FeatureSet, settings: LinearGridSettings, device: str
) -> dict[str, pd.DataFrame]:
    """The linear-protocol tables of one model's cached features."""
    result = linear_grid(train, test, settings, name, device)
    return {"linear_grid": result.grid, "linear_table": result.table}


def _concat(per_model: Sequence[Mapping[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    names = list(dict.fromkeys(k for tables in per_model for k in tables))
    return {n: pd.concat([t[n] for t in per_model if n in t], ignore_index=True) for n in names}


def _on_splits(
    protocol: str,
    checkpoints: Any,
    options: ExtractionOptions,
    settings: Any,
    out: str | Path,
    one: Any,
) -> ProtocolRun:
    check_dataset_name(options.dataset)
    models = _load_all(checkpoints, options)
    per_model = []
    for name, (loaded, _) in models.items():
        train = features(loaded.model, options, "train")
        test = features(loaded.model, options, "test")
        per_model.append(one(name, train, test, settings, options.device))
    tables = complete_tables(protocol, _concat(per_model))
    parameters = _parameters(settings, options, models)
    written = write_protocol_run(out, protocol, models, tables, parameters, _class_names(options))
    return ProtocolRun(protocol, tables, written, Path(out))


def run_knn(
    checkpoints: Any, options: ExtractionOptions, settings: KNNSettings, out: str | Path
) -> ProtocolRun:
    """``semprobe knn``: weighted kNN of every checkpoint on the options' dataset."""
    return _on_splits("knn", checkpoints, options, settings, out, knn_of)


def run_linear_grid(
    checkpoints: Any, options: ExtractionOptions, settings: LinearGridSettings, out: str | Path
) -> ProtocolRun:
    """``semprobe linear-grid``: the authors' train-tau x eval-tau protocol of every checkpoint."""
    return _on_splits("linear_grid", checkpoints, options, settings, out, linear_grid_of)


# -- robustness --------------------------------------------------------------------------------


@dataclass
class RobustnessPlan:
    """What a robustness run checked before any feature: parts, label sets, the train labels."""

    parts: list[EvalPart]
    label_sets: list[LabelSet]
    train_labels: np.ndarray
    train_classes: list[str]
    in_distribution: str


def _with(options: ExtractionOptions, dataset: str) -> ExtractionOptions:
    return dataclasses.replace(options, dataset=dataset)


def prepare_robustness(options: ExtractionOptions, settings: RobustnessSettings) -> RobustnessPlan:
    """Open the training split and every evaluation set, and check their classes meet."""
    check_dataset_name(options.dataset)
    if not settings.evals:
        raise SemprobeError("robustness needs at least one evaluation set (--eval NAME=DATASET)")
    parts = eval_parts(settings)
    for part in parts:
        check_dataset_name(part.dataset)
    train = open_split(options, "train")
    classes = list(train.class_names)
    for part in parts:
        opened = open_split(_with(options, part.dataset), "test")
        what = part.eval + (f" ({part.corruption} {part.severity})" if part.corruption else "")
        plan_classes(opened.class_names, opened.labels, classes, settings.subset(part.eval), what)
    names = None
    if settings.label_files:
        names = [train.name_of(i) for i in range(len(train))]
        if names and names[0] == f"{train.key} {train.split} image 0":
            raise SemprobeError(
                f"--label-file needs a dataset of image files; {options.dataset} has none"
            )
    sets = label_sets(
        train.labels, settings.label_fractions, settings.label_files, names, settings.seed
    )
    label = column_names([options.dataset])[options.dataset]
    return RobustnessPlan(parts, sets, np.asarray(train.labels), classes, label)


def _fit_label_set(
    label_set: LabelSet,
    x_train: Any,
    x_test: Any,
    train: FeatureSet,
    test: FeatureSet,
    settings: RobustnessSettings,
    device: str,
) -> Selected:
    """The probe of one label set, fitted on its rows only."""
    rows = np.arange(len(train.labels)) if label_set.rows is None else label_set.rows
    with contextlib.ExitStack() as stack:
        x_fit = x_train if label_set.rows is None else stack.enter_context(rows_of(x_train, rows))
        return fit_selected(
            x_fit,
            train.labels[rows],
            x_test,
            test.labels,
            settings.strengths,
            settings.validation_fraction,
            settings.epochs,
            settings.seed,
            device,
        )


def robustness_of(
    name: str,
    loaded: LoadedModel,
    options: ExtractionOptions,
    settings: RobustnessSettings,
    plan: RobustnessPlan,
) -> dict[str, pd.DataFrame]:
    """One model's robustness rows: a probe per label set, scored on every evaluation set."""
    model = loaded.model
    train, test = features(model, options, "train"), features(model, options, "test")
    if not np.array_equal(train.labels, plan.train_labels):
        raise SemprobeError("the cached training features do not match the training split")
    spec = loaded.spec
    rep, tau = resolve_representation(settings.representation, settings.tau, spec.tau, spec.has_sem)
    x_train, x_test = probe_inputs(train, test, rep, 1.0 if tau is None else tau)
    mean, std = column_stats(FeatureRows(train, rep, tau))
    evals = [(part, features(model, _with(options, part.dataset), "test")) for part in plan.parts]
    records = []
    for label_set in plan.label_sets:
        selected = _fit_label_set(label_set, x_train, x_test, train, test, settings, options.device)
        fitted = FittedProbe(
            label_set, selected.probe, selected.strength, mean, std, rep, tau, selected.validation
        )
        n_labels = label_set.count(len(train.labels))
        own = EvalPart(plan.in_distribution, options.dataset)
        scored = accuracies(
            probe_scores(selected.probe, x_test), label_columns(selected.probe, test.labels)
        )
        extra = {"classes": len(plan.train_classes), "images": len(test.labels), "left_out": 0}
        records.append(
            part_record(name, fitted, own, {**extra, **scored, "restricted": False}, n_labels)
        )
        for part, fs in evals:
            what = part.eval
            subset = settings.subset(part.eval)
            classes = plan_classes(fs.class_names, fs.labels, plan.train_classes, subset, what)
            scored = score_part(fitted, fs, classes, plan.train_classes, options.device)
            records.append(part_record(name, fitted, part, scored, n_labels))
    return {"robustness": pd.DataFrame(records)}


def run_robustness(
    checkpoints: Any, options: ExtractionOptions, settings: RobustnessSettings, out: str | Path
) -> ProtocolRun:
    """``semprobe robustness``: probes on the options' dataset, scored on the evaluation sets."""
    plan = prepare_robustness(options, settings)
    models = _load_all(checkpoints, options)
    per_model = [
        robustness_of(name, loaded, options, settings, plan) for name, (loaded, _) in models.items()
    ]
    tables = complete_tables("robustness", _concat(per_model))
    parameters = _parameters(settings, options, models)
    written = write_protocol_run(out, "robustness", models, tables, parameters, plan.train_classes)
    return ProtocolRun("robustness", tables, written, Path(out))


# -- transfer ----------------------------------------------------------------------------------


def prepare_transfer(settings: TransferSettings, options: ExtractionOptions) -> None:
    """Check every dataset name (and folder) before anything is loaded; without downloads, also
    open every split (a missing dataset fails before the first extraction)."""
    for dataset in settings.datasets:
        check_dataset_name(dataset)
    if not options.download:
        for dataset in settings.datasets:
            for split in ("train", "test"):
                open_split(_with(options, dataset), split)


def transfer_of(
    name: str, loaded: LoadedModel, options: ExtractionOptions, settings: TransferSettings
) -> dict[str, pd.DataFrame]:
    """One model's transfer rows: a probe per dataset."""
    spec = loaded.spec
    rep, tau = resolve_representation(settings.representation, settings.tau, spec.tau, spec.has_sem)
    rows = []
    for dataset in settings.datasets:
        target = _with(options, dataset)
        train = features(loaded.model, target, "train")
        test = features(loaded.model, target, "test")
        rows.append(transfer_scores(train, test, rep, tau, settings, name, dataset, options.device))
    return {"transfer": pd.DataFrame(rows)}


def run_transfer(
    checkpoints: Any, options: ExtractionOptions, settings: TransferSettings, out: str | Path
) -> ProtocolRun:
    """``semprobe transfer``: one table of every checkpoint on every dataset."""
    prepare_transfer(settings, options)
    models = _load_all(checkpoints, options)
    per_model = [
        transfer_of(name, loaded, options, settings) for name, (loaded, _) in models.items()
    ]
    tables = _concat(per_model)
    parameters = _parameters(settings, options, models)
    written = write_protocol_run(out, "transfer", models, tables, parameters, [])
    return ProtocolRun("transfer", tables, written, Path(out))
