"""The paper's Table 2: a probe trained on one dataset, scored on shifted versions of it.

A probe is fitted on the training split (with 100 % of the labels, a class-balanced fraction, or
a standard label file: :mod:`.label_fraction`) and evaluated on the training dataset's test split
and on every evaluation set:

* ``classfolder:PATH`` trees of class folders: ImageNet-R and ImageNet-A (200 WordNet-id
  folders each), ImageNet-V2 (folders ``0`` ... ``999``: class indices of the training set);
* ``imagenet-c:PATH``: ``PATH/<corruption>/<severity>/<class>/``; scored per corruption and
  severity, then averaged over severities and over everything (Hendrycks and Dietterich, ICLR
  2019; the mean corruption error needs AlexNet's errors, which are not computed here);
* any other dataset name, by its test split.

An evaluation set's classes are matched to the probe's by name (exact, then ignoring case,
spaces, ``_`` and ``-``), or by index when every folder name is an integer (ImageNet-V2). The
probe's outputs are then restricted to the classes present (Hendrycks et al.'s protocol for the
200-class ImageNet-R and ImageNet-A), or to a subset given by class name or WordNet id; images
of other classes are left out and counted. No class in common is an error.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from semprobe.errors import DatasetError, SemprobeError
from semprobe.features import FeatureSet
from semprobe.probe import SparseLogisticProbe
from semprobe.protocols.label_fraction import LabelSet
from semprobe.protocols.rows import FeatureRows, accuracies, label_columns, linear_scores
from semprobe.protocols.strengths import (
    SWEEP_STRENGTH,
    Strength,
    check_fit_fields,
    check_fraction,
)
from semprobe.validation import check_tau

IMAGENET_C = "imagenet-c"
PROBE_REPRESENTATIONS = ("auto", "sem", "backbone", "logits")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _pairs(value: Any, what: str) -> tuple[tuple[str, Any], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    out = tuple((str(k), v) for k, v in items)
    names = [k for k, _ in out]
    if len(set(names)) != len(names):
        raise SemprobeError(f"{what} names must be distinct, got {names}")
    for name in names:
        if not _NAME.match(name):
            raise SemprobeError(f"{what} name {name!r}: use letters, digits, '_', '.', '+', '-'")
    return out


def parse_pair(text: str, what: str) -> tuple[str, str]:
    """``NAME=VALUE`` from the command line, or a one-line error naming ``what``."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise SemprobeError(f"{what} must be NAME=VALUE, got {text!r}")
    return name, value


@dataclass(frozen=True)
class RobustnessSettings:
    """What ``semprobe robustness`` evaluates.

    Parameters
    ----------
    evals:
        ``name -> dataset`` (or ``(name, dataset)`` pairs): ``classfolder:PATH``,
        ``imagenet-c:PATH`` or any dataset name (its test split).
    subsets:
        ``eval name -> class names or WordNet ids``: restrict that evaluation to them.
    label_fractions:
        Fractions of the training labels, each in (0, 1]; 1 is the 100 % probe.
    label_files:
        ``name -> file`` of standard label lists (e.g. ``1pct -> 1percent.txt``).
    representation, tau:
        The probe's features: ``auto`` (SEM output at the model's tau, backbone features for a
        model without SEM), ``sem`` (at ``tau``), ``backbone`` or ``logits``.
    strengths, validation_fraction, epochs, seed:
        The probe (see :func:`~semprobe.protocols.strengths.fit_selected`); the seed also draws
        the label fractions.
    """

    evals: Any = ()
    subsets: Any = ()
    label_fractions: tuple[float, ...] = (1.0,)
    label_files: Any = ()
    representation: str = "auto"
    tau: float | None = None
    strengths: tuple[Strength, ...] = SWEEP_STRENGTH
    validation_fraction: float = 0.1
    epochs: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        evals = _pairs(self.evals, "evaluation set")
        object.__setattr__(self, "evals", tuple((n, str(d)) for n, d in evals))
        subsets = tuple((n, _class_list(v)) for n, v in _pairs(self.subsets, "subset"))
        unknown = [n for n, _ in subsets if n not in dict(self.evals)]
        if unknown:
            raise SemprobeError(f"subset {unknown[0]!r} names no evaluation set")
        object.__setattr__(self, "subsets", subsets)
        fractions = self.label_fractions
        fractions = (fractions,) if isinstance(fractions, int | float) else tuple(fractions)
        object.__setattr__(
            self, "label_fractions", tuple(check_fraction("label fraction", f) for f in fractions)
        )
        files = tuple((n, str(f)) for n, f in _pairs(self.label_files, "label file"))
        object.__setattr__(self, "label_files", files)
        if not self.label_fractions and not files:
            raise SemprobeError("give at least one label fraction or label file")
        object.__setattr__(self, "tau", check_representation(self.representation, self.tau))
        check_fit_fields(self)

    def subset(self, name: str) -> tuple[str, ...] | None:
        return dict(self.subsets).get(name)


def check_representation(representation: str, tau: float | None) -> float | None:
    """The probe's input: one of :data:`PROBE_REPRESENTATIONS`, and a valid tau or ``None``."""
    if representation not in PROBE_REPRESENTATIONS:
        raise SemprobeError(
            f"unknown representation {representation!r}; choose one of "
            f"{', '.join(PROBE_REPRESENTATIONS)}"
        )
    return None if tau is None else check_tau(tau)


def _class_list(value: Any) -> tuple[str, ...]:
    """Class names from a list, a comma-separated string, or ``@FILE`` (one per line)."""
    if isinstance(value, str):
        if value.startswith("@"):
            try:
                text = Path(value[1:]).read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise SemprobeError(f"cannot read class list {value[1:]}: {exc}") from None
            items = [line.strip() for line in text.splitlines()]
        else:
            items = [part.strip() for part in value.split(",")]
    else:
        items = [str(v).strip() for v in value]
    items = [i for i in items if i and not i.startswith("#")]
    if not items:
        raise SemprobeError(f"a class subset lists no class: {value!r}")
    return tuple(dict.fromkeys(items))


def resolve_representation(
    representation: str, tau: float | None, model_tau: float, has_sem: bool
) -> tuple[str, float | None]:
    """``auto`` -> SEM at the model's tau (backbone without SEM); ``sem`` at ``tau``."""
    if representation == "auto":
        representation = "sem" if has_sem else "backbone"
    if representation in ("sem", "logits") and not has_sem:
        raise SemprobeError(
            f"representation {representation} needs a SEM embedder; the model has none"
        )
    if representation != "sem":
        return representation, None
    return representation, model_tau if tau is None else tau


# -- the evaluation sets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalPart:
    """One dataset to score: an evaluation set, or one (corruption, severity) of ImageNet-C."""

    eval: str
    dataset: str
    corruption: str | None = None
    severity: int | None = None


def corruption_tree(path: str | os.PathLike[str]) -> list[tuple[str, int, Path]]:
    """``(corruption, severity, folder)`` of an ImageNet-C tree, sorted.

    Raises
    ------
    DatasetError
        When the root is missing or holds no ``<corruption>/<severity>/`` folder.
    """
    root = Path(path).expanduser().absolute()
    if not root.is_dir():
        raise DatasetError(f"ImageNet-C root {root} does not exist")
    parts = []
    for corruption in sorted(p for p in root.iterdir() if p.is_dir()):
        for severity in sorted(p for p in corruption.iterdir() if p.is_dir()):
            if not severity.name.isdigit():
                raise DatasetError(
                    f"{severity} is not a severity folder (ImageNet-C is "
                    "<corruption>/<severity>/<class>/, severities 1 to 5)"
                )
            parts.append((corruption.name, int(severity.name), severity))
    if not parts:
        raise DatasetError(f"ImageNet-C root {root} has no <corruption>/<severity>/ folders")
    return parts


def eval_parts(settings: RobustnessSettings) -> list[EvalPart]:
    """Every dataset the settings' evaluation sets consist of (ImageNet-C expanded)."""
    parts = []
    for name, dataset in settings.evals:
        kind, _, rest = dataset.partition(":")
        if kind == IMAGENET_C and rest:
            for corruption, severity, folder in corruption_tree(rest):
                parts.append(EvalPart(name, f"classfolder:{folder}", corruption, severity))
        else:
            parts.append(EvalPart(name, dataset))
    return parts


# -- classes -----------------------------------------------------------------------------------


def _normal(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def match_classes(eval_names: Sequence[str], train_names: Sequence[str]) -> np.ndarray:
    """Each evaluation class's index among the training classes, -1 where it has none.

    By name, then by name ignoring case, spaces, ``_`` and ``-``; when no name matches and every
    evaluation name is an integer, by index (ImageNet-V2's folders ``0`` ... ``999``).

    Examples
    --------
    >>> match_classes(["n02", "Golden_Retriever", "zebra"], ["n01", "n02", "golden retriever"])
    array([ 1,  2, -1])
    >>> match_classes(["0", "2"], ["n01", "n02", "n03"])
    array([0, 2])
    """
    exact = {name: i for i, name in enumerate(train_names)}
    loose = {_normal(name): i for i, name in enumerate(train_names)}
    out = np.array([exact.get(n, loose.get(_normal(n), -1)) for n in eval_names], dtype=np.int64)
    if (out < 0).all() and all(n.isdigit() for n in eval_names):
        indices = np.array([int(n) for n in eval_names], dtype=np.int64)
        out = np.where(indices < len(train_names), indices, -1)
    return out


@dataclass(frozen=True)
class ClassPlan:
    """How one evaluation dataset's labels meet the probe's classes.

    Attributes
    ----------
    mapping: evaluation class index -> training class index (-1: none).
    allowed: sorted training class indices the probe's outputs are restricted to.
    unmatched: evaluation classes with no training class (their images are left out).
    """

    mapping: np.ndarray
    allowed: np.ndarray
    unmatched: list[str] = field(default_factory=list)


def plan_classes(
    eval_names: Sequence[str],
    eval_labels: np.ndarray,
    train_names: Sequence[str],
    subset: Sequence[str] | None,
    what: str,
) -> ClassPlan:
    """The restriction of one evaluation dataset (see the module docstring).

    Raises
    ------
    SemprobeError
        When no evaluation class is among the probe's (or the subset's) classes, or a subset
        entry is not a training class.
    """
    mapping = match_classes(eval_names, train_names)
    present = np.unique(mapping[np.asarray(eval_labels, dtype=np.int64)])
    present = present[present >= 0]
    unmatched = [n for n, m in zip(eval_names, mapping, strict=True) if m < 0]
    if subset is not None:
        wanted = match_classes(list(subset), train_names)
        if (wanted < 0).any():
            missing = [s for s, w in zip(subset, wanted, strict=True) if w < 0]
            raise SemprobeError(
                f"{what}: subset class {missing[0]!r} is not a class of the training set"
            )
        present = np.intersect1d(present, wanted)
    if not len(present):
        example = ", ".join(list(eval_names)[:3])
        raise SemprobeError(
            f"{what}: no class in common with the probe's {len(train_names)} classes "
            f"(its classes: {example}, ...)"
        )
    return ClassPlan(mapping, np.sort(present), unmatched)


def restricted_scores(
    scores: np.ndarray, probe: SparseLogisticProbe, allowed: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The scores of the ``allowed`` classes only, and each label's column among them.

    ``labels`` are training class indices; a class the probe never saw scores -inf.
    """
    columns = label_columns(probe, allowed)
    out = np.full((len(scores), len(allowed)), -np.inf, dtype=np.float32)
    seen = columns >= 0
    out[:, seen] = scores[:, columns[seen]]
    position = np.searchsorted(allowed, labels)
    return out, position


# -- scoring -----------------------------------------------------------------------------------


@dataclass
class FittedProbe:
    """A probe of one label set and the standardisation its inputs had."""

    labels: LabelSet
    probe: SparseLogisticProbe
    strength: Strength
    mean: np.ndarray
    std: np.ndarray
    representation: str
    tau: float | None
    validation: dict[str, float] = field(default_factory=dict)


def score_part(
    fitted: FittedProbe,
    features: FeatureSet,
    plan: ClassPlan,
    train_names: Sequence[str],
    device: str = "cpu",
) -> dict[str, Any]:
    """Accuracies of one probe on one evaluation dataset, restricted per ``plan``."""
    mapped = plan.mapping[np.asarray(features.labels, dtype=np.int64)]
    keep = np.flatnonzero(np.isin(mapped, plan.allowed))
    rows = FeatureRows(features, fitted.representation, fitted.tau, keep)
    probe = fitted.probe
    scores = linear_scores(rows, probe.coef_, probe.intercept_, fitted.mean, fitted.std, device)
    restricted, position = restricted_scores(scores, probe, plan.allowed, mapped[keep])
    return {
        "classes": len(plan.allowed),
        "images": len(keep),
        "left_out": int(len(mapped) - len(keep)),
        **accuracies(restricted, position),
        "restricted": bool(len(plan.allowed) < len(train_names)),
    }


def part_record(
    model: str, fitted: FittedProbe, part: EvalPart, scored: Mapping[str, Any], n_labels: int
) -> dict[str, Any]:
    """One row of the tidy robustness table."""
    return {
        "model": model,
        "labels": fitted.labels.name,
        "n_labels": n_labels,
        "eval": part.eval,
        "dataset": part.dataset,
        "corruption": part.corruption,
        "severity": part.severity,
        "representation": fitted.representation,
        "tau": math.nan if fitted.tau is None else fitted.tau,
        "strength": fitted.strength.label,
        **scored,
    }


# -- tables ------------------------------------------------------------------------------------


def corruption_table(tidy: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """ImageNet-C per corruption: one column per severity and their mean."""
    c = tidy[tidy["corruption"].notna()]
    if c.empty:  # no ImageNet-C: the header only (a CSV without columns cannot be read back)
        return pd.DataFrame(columns=["model", "labels", "eval", "corruption", "mean"])
    wide = c.pivot_table(
        index=["model", "labels", "eval", "corruption"], columns="severity", values=metric
    )
    wide.columns = [f"severity {int(s)}" for s in wide.columns]
    wide["mean"] = wide.mean(axis=1)
    return wide.reset_index()


def robustness_table(tidy: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """The paper's Table 2 layout: a row per (model, labels), a column per evaluation.

    An ImageNet-C evaluation is the mean over its corruptions and severities.
    """
    if tidy.empty:
        return pd.DataFrame()
    means = tidy.groupby(["model", "labels", "eval"], sort=False)[metric].mean()
    wide = means.unstack("eval")
    order = list(dict.fromkeys(tidy["eval"]))
    wide = wide[order]
    wide.columns.name = None
    row_order = list(dict.fromkeys(zip(tidy["model"], tidy["labels"], strict=True)))
    return wide.reindex(pd.MultiIndex.from_tuples(row_order, names=["model", "labels"]))
