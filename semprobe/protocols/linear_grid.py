"""The SEM authors' linear protocol from cached features: a train-tau x eval-tau grid of probes.

Their ``main_linear`` (``solo/methods/linear_control.py`` of the authors' code) trains a linear
classifier on ``softmax(z / tau_train)`` for every training temperature and evaluates each at
every ``tau_eval`` (their CIFAR script: both {1e-4, 1e-3, 0.01, 0.1, 1, 10}), over L1 (``wd1``)
and L2 (``wd2``) strengths, beside classifiers on the backbone features and on the pre-softmax
embedding: the paper's "two temperatures". Here each probe is fitted once on the cached logits
and scored at every ``tau_eval`` without re-running the backbone.

A probe fitted on the standardised ``softmax(z / tau_train)`` is an affine function of the raw
SEM output; evaluating it at ``tau_eval`` applies that same function to ``softmax(z / tau_eval)``
(the standardisation of ``tau_train`` folded into its weights), exactly what the authors'
classifier does to its input. With several strengths a validation split of the training rows
chooses one per (tau_train, tau_eval) cell, and the chosen strengths are refitted on every
training row; every strength's validation and test accuracy is kept as well. With one strength
nothing is held out and the diagonal ``tau_eval == tau_train`` is the tau sweep
(:func:`semprobe.studies.tau_sweep`), number for number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from semprobe.analysis import probe_inputs
from semprobe.errors import SemprobeError
from semprobe.features import FeatureSet
from semprobe.probe import SparseLogisticProbe
from semprobe.protocols.rows import (
    FeatureRows,
    accuracies,
    column_stats,
    label_columns,
    linear_scores,
    probe_scores,
)
from semprobe.protocols.strengths import (
    DEFAULT_STRENGTHS,
    Strength,
    check_fit_fields,
    fit,
    holdout,
    rows_of,
)
from semprobe.validation import check_taus

#: The authors' CIFAR taus (``bash_files/linear/cifar/sdbyol.sh``), for training and evaluation.
AUTHORS_TAUS = (1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0)


@dataclass(frozen=True)
class LinearGridSettings:
    """The linear protocol's grid.

    Parameters
    ----------
    train_taus, eval_taus:
        Temperatures the probes are trained and evaluated at.
    strengths:
        The penalties to choose from (:class:`~semprobe.protocols.strengths.Strength`).
    validation_fraction:
        Share of the training rows held out to choose the strength (with several strengths).
    epochs, seed:
        Probe passes over the data; seed of the validation split.
    refit:
        Refit each chosen strength on every training row (else keep the fit without the
        validation rows).
    baselines:
        Also probe the backbone features and the pre-softmax embedding.
    """

    train_taus: tuple[float, ...] = AUTHORS_TAUS
    eval_taus: tuple[float, ...] = AUTHORS_TAUS
    strengths: tuple[Strength, ...] = DEFAULT_STRENGTHS
    validation_fraction: float = 0.1
    epochs: int = 40
    seed: int = 0
    refit: bool = True
    baselines: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_taus", tuple(check_taus(self.train_taus)))
        object.__setattr__(self, "eval_taus", tuple(check_taus(self.eval_taus)))
        check_fit_fields(self)


@dataclass
class LinearGridResult:
    """Every fit of the grid and the chosen cells.

    Attributes
    ----------
    grid: one row per (representation, tau_train, strength, fit, split, tau_eval): ``model,
        representation, tau_train, tau_eval, strength, l1, l2, fit`` (``train-part`` without the
        validation rows, or ``all``), ``split`` (``val`` or ``test``), ``top1, top5,
        mean_per_class, n_features, passes, converged``.
    table: one row per (representation, tau_train, tau_eval): the chosen ``strength``, its
        ``val_top1`` (NaN with one strength) and its test ``top1, top5, mean_per_class``.
        Baselines have NaN taus.
    """

    grid: pd.DataFrame
    table: pd.DataFrame


@dataclass
class _Family:
    """What one (representation, tau_train) shares: inputs, standardisation, eval temperatures."""

    train: FeatureSet
    test: FeatureSet
    representation: str
    tau: float
    evals: list[float]
    x_train: Any
    x_test: Any
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def scores(self, probe: SparseLogisticProbe, split: str, tau_eval: float, rows: Any, device):
        """Scores of ``split`` rows at ``tau_eval`` (``rows``: the validation rows, or None)."""
        if tau_eval == self.tau or math.isnan(tau_eval):
            x = self.x_test if split == "test" else rows[1]
            return probe_scores(probe, x)
        fs = self.test if split == "test" else self.train
        view = FeatureRows(fs, self.representation, tau_eval, None if split == "test" else rows[0])
        return linear_scores(view, probe.coef_, probe.intercept_, self.mean, self.std, device)


def _evaluate(
    family: _Family, probe: SparseLogisticProbe, split: str, rows: Any, base: dict, device: str
) -> list[dict[str, Any]]:
    labels = family.test.labels if split == "test" else family.train.labels[rows[0]]
    columns = label_columns(probe, labels)
    out = []
    for tau_eval in family.evals:
        scores = family.scores(probe, split, tau_eval, rows, device)
        out.append({**base, "split": split, "tau_eval": tau_eval, **accuracies(scores, columns)})
    return out


def _fit_rows(
    family: _Family,
    strength: Strength,
    kind: str,
    x: Any,
    y: np.ndarray,
    settings: LinearGridSettings,
    model: str,
    device: str,
) -> tuple[SparseLogisticProbe, dict[str, Any]]:
    """One fit; the test rows given to fit_probe only score it, they never choose anything."""
    probe, stats = fit(
        x, y, family.x_test, family.test.labels, strength, settings.epochs, settings.seed, device
    )
    base = {
        "model": model,
        "representation": family.representation,
        "tau_train": family.tau,
        "strength": strength.label,
        "l1": strength.l1,
        "l2": strength.l2,
        "fit": kind,
        "n_features": int(x.shape[1]),
        "passes": stats["passes"],
        "converged": stats["converged"],
    }
    return probe, base


def _family_rows(
    family: _Family,
    settings: LinearGridSettings,
    split: tuple[np.ndarray, np.ndarray] | None,
    model: str,
    device: str,
) -> list[dict[str, Any]]:
    """Every fit of one (representation, tau_train) and its accuracies."""
    y = family.train.labels
    records: list[dict[str, Any]] = []
    if split is None:
        probe, base = _fit_rows(
            family, settings.strengths[0], "all", family.x_train, y, settings, model, device
        )
        return _evaluate(family, probe, "test", None, base, device)
    with rows_of(family.x_train, split[0]) as x_part, rows_of(family.x_train, split[1]) as x_val:
        for strength in settings.strengths:
            probe, base = _fit_rows(
                family, strength, "train-part", x_part, y[split[0]], settings, model, device
            )
            records += _evaluate(family, probe, "val", (split[1], x_val), base, device)
            records += _evaluate(family, probe, "test", None, base, device)
    if settings.refit:
        chosen = _choices(pd.DataFrame(records), settings.strengths)
        for label in dict.fromkeys(chosen.values()):
            strength = next(s for s in settings.strengths if s.label == label)
            probe, base = _fit_rows(
                family, strength, "all", family.x_train, y, settings, model, device
            )
            records += _evaluate(family, probe, "test", None, base, device)
    return records


def _key(tau_eval: Any) -> float | None:
    """A dictionary key for a tau that may be NaN (the baselines')."""
    return None if pd.isna(tau_eval) else float(tau_eval)


def _choices(records: pd.DataFrame, strengths: Sequence[Strength]) -> dict[float | None, str]:
    """``tau_eval -> strength label`` with the best validation top-1 (ties: listed first)."""
    val = records[(records["split"] == "val") & (records["fit"] == "train-part")]
    order = {s.label: i for i, s in enumerate(strengths)}
    chosen = {}
    for tau_eval, rows in val.groupby("tau_eval", sort=False, dropna=False):
        ranked = rows.assign(rank=rows["strength"].map(order))
        ranked = ranked.sort_values(["top1", "rank"], ascending=[False, True], kind="stable")
        chosen[_key(tau_eval)] = str(ranked["strength"].iloc[0])
    return chosen


def _family(
    train: FeatureSet, test: FeatureSet, representation: str, tau: float, eval_taus: Sequence[float]
) -> _Family:
    x_train, x_test = probe_inputs(train, test, representation, 1.0 if math.isnan(tau) else tau)
    evals = list(eval_taus) if representation == "sem" else [math.nan]
    family = _Family(train, test, representation, tau, evals, x_train, x_test)
    if any(e != tau for e in evals if not math.isnan(e)):
        family.mean, family.std = column_stats(FeatureRows(train, representation, tau))
    return family


def linear_grid(
    train: FeatureSet,
    test: FeatureSet,
    settings: LinearGridSettings = LinearGridSettings(),
    model: str = "model",
    device: str = "cpu",
) -> LinearGridResult:
    """The train-tau x eval-tau grid of one model's cached features.

    Parameters
    ----------
    train, test:
        Cached features of the two splits (same classes).
    settings:
        Taus, strengths and the validation split.
    model:
        Name in the tables.
    device:
        Torch device of the probes.

    Returns
    -------
    LinearGridResult
        ``grid`` (every fit and evaluation) and ``table`` (the chosen strength per cell). A model
        without SEM embedder gets the backbone baseline only.
    """
    if train.class_names != test.class_names:
        raise SemprobeError("the train and test splits have different class lists")
    split = None
    if len(settings.strengths) > 1:
        split = holdout(train.labels, settings.validation_fraction, settings.seed)
    families: list[tuple[str, float]] = []
    if settings.baselines or train.logits is None:
        families.append(("backbone", math.nan))
    if train.logits is not None:
        families += [("logits", math.nan)] if settings.baselines else []
        families += [("sem", tau) for tau in settings.train_taus]
    records: list[dict[str, Any]] = []
    for representation, tau in families:
        family = _family(train, test, representation, tau, settings.eval_taus)
        records += _family_rows(family, settings, split, model, device)
        del family  # the inputs of one tau_train at a time
    grid = pd.DataFrame(records)
    return LinearGridResult(grid, chosen_table(grid, settings.strengths))


def chosen_table(grid: pd.DataFrame, strengths: Sequence[Strength]) -> pd.DataFrame:
    """One row per (model, representation, tau_train, tau_eval): the chosen strength's scores."""
    rows = []
    keys = ["model", "representation", "tau_train"]
    for key, family in grid.groupby(keys, sort=False, dropna=False):
        final = family[(family["split"] == "test")]
        has_val = (family["split"] == "val").any()
        choices = _choices(family, strengths) if has_val else {}
        refit = (final["fit"] == "all").any()
        for tau_eval in dict.fromkeys(final["tau_eval"].tolist()):
            label = choices.get(_key(tau_eval), str(final["strength"].iloc[0]))
            fit_kind = "all" if refit else "train-part"
            pick = final[
                (final["strength"] == label)
                & (final["fit"] == fit_kind)
                & _same(final["tau_eval"], tau_eval)
            ].iloc[0]
            val = family[
                (family["split"] == "val")
                & (family["strength"] == label)
                & _same(family["tau_eval"], tau_eval)
            ]
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "tau_eval": tau_eval,
                    "strength": label,
                    "val_top1": float(val["top1"].iloc[0]) if len(val) else math.nan,
                    "top1": pick["top1"],
                    "top5": pick["top5"],
                    "mean_per_class": pick["mean_per_class"],
                    "fit": fit_kind,
                }
            )
    return pd.DataFrame(rows)


def _same(column: pd.Series, value: float) -> pd.Series:
    return column.isna() if math.isnan(value) else column == value


def heatmap_table(table: pd.DataFrame, model: str, metric: str = "top1") -> pd.DataFrame:
    """``tau_train`` rows x ``tau_eval`` columns of one model's chosen SEM cells."""
    sem = table[(table["model"] == model) & (table["representation"] == "sem")]
    wide = sem.pivot(index="tau_train", columns="tau_eval", values=metric)
    wide.index = [f"{t:g}" for t in wide.index]
    wide.columns = [f"{t:g}" for t in wide.columns]
    return wide.rename_axis(index="tau_train", columns="tau_eval")
