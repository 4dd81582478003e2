"""The paper's Table 3: a linear probe per target dataset, for one or more checkpoints.

For each (checkpoint, dataset) a probe is fitted on the dataset's training split (a validation
split choosing the strength when several are given) and scored on its test split: top-1 and mean
per-class accuracy. The table reports, per dataset, the metric of Kornblith et al. (CVPR 2019),
which the SSL transfer literature follows: mean per-class accuracy for Oxford-IIIT Pets,
Flowers-102 and Caltech-101, top-1 accuracy elsewhere (``imagefolder:PATH`` datasets: top-1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from semprobe.analysis import probe_inputs
from semprobe.errors import SemprobeError
from semprobe.features import FeatureSet
from semprobe.protocols.robustness import check_representation
from semprobe.protocols.rows import accuracies, label_columns, probe_scores
from semprobe.protocols.strengths import (
    SWEEP_STRENGTH,
    Strength,
    check_fit_fields,
    fit_selected,
)

#: Datasets whose transfer metric is the mean per-class accuracy (Kornblith et al., 2019).
MEAN_PER_CLASS = frozenset({"pets", "flowers102", "caltech101"})
#: Dataset kinds named after their folder in tables.
FOLDER_KINDS = ("imagefolder", "imagenet", "classfolder")


@dataclass(frozen=True)
class TransferSettings:
    """What ``semprobe transfer`` evaluates.

    Parameters
    ----------
    datasets:
        Dataset names: ``food101``, ``cifar10``, ``cifar100``, ``sun397``, ``dtd``, ``pets``,
        ``flowers102``, ``caltech101``, ``stanford_cars`` or ``imagefolder:PATH`` (any name
        :func:`semprobe.data.open_dataset` opens).
    representation, tau, strengths, validation_fraction, epochs, seed:
        The probe, as in :class:`~semprobe.protocols.robustness.RobustnessSettings`.
    """

    datasets: tuple[str, ...] = ()
    representation: str = "auto"
    tau: float | None = None
    strengths: tuple[Strength, ...] = SWEEP_STRENGTH
    validation_fraction: float = 0.1
    epochs: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        datasets = (self.datasets,) if isinstance(self.datasets, str) else tuple(self.datasets)
        if not datasets:
            raise SemprobeError("transfer needs at least one dataset")
        if len(set(datasets)) != len(datasets):
            raise SemprobeError(f"a transfer dataset is given twice in {list(datasets)}")
        object.__setattr__(self, "datasets", tuple(str(d) for d in datasets))
        object.__setattr__(self, "tau", check_representation(self.representation, self.tau))
        check_fit_fields(self)


def column_names(datasets: Sequence[str]) -> dict[str, str]:
    """A short, distinct table column per dataset (``imagefolder:a/pets`` -> ``pets``).

    Examples
    --------
    >>> column_names(["synthetic:train=5", "imagefolder:/x/a", "imagefolder:/y/a"])
    {'synthetic:train=5': 'synthetic', 'imagefolder:/x/a': 'a', 'imagefolder:/y/a': 'a (2)'}
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in datasets:
        kind, _, rest = name.partition(":")
        base = (Path(rest).name or kind) if kind in FOLDER_KINDS and rest else kind
        label, i = base, 2
        while label in taken:
            label, i = f"{base} ({i})", i + 1
        taken.add(label)
        out[name] = label
    return out


def paper_metric(dataset: str) -> str:
    """``mean_per_class`` or ``top1``: the metric Table 3 reports for ``dataset``."""
    return "mean_per_class" if dataset in MEAN_PER_CLASS else "top1"


def transfer_scores(
    train: FeatureSet,
    test: FeatureSet,
    representation: str,
    tau: float | None,
    settings: TransferSettings,
    model: str,
    dataset: str,
    device: str = "cpu",
) -> dict[str, Any]:
    """One model's probe on one dataset: a row of the tidy transfer table."""
    if train.class_names != test.class_names:
        raise SemprobeError(f"{dataset}: the train and test splits have different class lists")
    x_train, x_test = probe_inputs(train, test, representation, 1.0 if tau is None else tau)
    selected = fit_selected(
        x_train,
        train.labels,
        x_test,
        test.labels,
        settings.strengths,
        settings.validation_fraction,
        settings.epochs,
        settings.seed,
        device,
    )
    probe = selected.probe
    scores = probe_scores(probe, x_test)
    scored = accuracies(scores, label_columns(probe, test.labels))
    metric = paper_metric(dataset)
    return {
        "model": model,
        "dataset": dataset,
        "representation": representation,
        "tau": math.nan if tau is None else tau,
        "strength": selected.strength.label,
        "n_train": len(train.labels),
        "n_test": len(test.labels),
        "n_classes": len(train.class_names),
        **scored,
        "metric": metric,
        "value": scored[metric],
        "validation": ";".join(f"{k}:{v:.4f}" for k, v in selected.validation.items()),
    }


def transfer_table(tidy: pd.DataFrame, value: str = "value") -> pd.DataFrame:
    """The paper's Table 3 layout: a row per model, a column per dataset (its paper metric by
    default; ``top1`` or ``mean_per_class`` for those)."""
    if tidy.empty:
        return pd.DataFrame()
    columns = column_names(list(dict.fromkeys(tidy["dataset"])))
    wide = tidy.assign(column=tidy["dataset"].map(columns)).pivot(
        index="model", columns="column", values=value
    )
    wide = wide.reindex(index=list(dict.fromkeys(tidy["model"])), columns=list(columns.values()))
    return wide.rename_axis(index="model", columns=None)
