"""The two temperature analyses of cached features: entropy at each tau, and the tau sweep.

The paper has two temperatures: the one used in pre-training, and the one applied before the
downstream classifier, which controls expressivity. Both analyses read only cached logits, so
any number of taus costs one backbone pass per (model, dataset, split).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from semprobe.analysis import RelevanceSettings, fit_probe, probe_inputs
from semprobe.entropy import EntropyReport, entropy_report
from semprobe.features import FeatureSet
from semprobe.validation import check_taus

DEFAULT_TAUS = (0.01, 0.1, 1.0, 10.0)


@dataclass(frozen=True)
class ProbeSettings:
    """The tau sweep's probe: L2 by default (dense), as the paper's linear evaluation."""

    l1: float = 0.0
    l2: float = 1e-4
    epochs: int = 40
    seed: int = 0


def entropy_for(
    test: FeatureSet,
    taus: Sequence[float],
    superclass_labels: Sequence[str] | None = None,
    progress: bool = False,
) -> EntropyReport:
    """Entropy statistics of a SEM model's cached test logits at each tau."""
    logits = test.require_logits("the entropy analysis")
    return entropy_report(
        logits,
        test.num_simplices,
        test.vocab,
        check_taus(taus),
        labels=test.labels,
        class_names=test.class_names,
        superclass_of=list(superclass_labels) if superclass_labels is not None else None,
        progress=progress,
    )


def tau_sweep(
    train: FeatureSet,
    test: FeatureSet,
    taus: Sequence[float] = DEFAULT_TAUS,
    probe: ProbeSettings = ProbeSettings(),
    model: str = "model",
    device: str = "cpu",
) -> pd.DataFrame:
    """Probe accuracy for f_SEM(tau) at each tau, the backbone features and the raw logits.

    Returns
    -------
    pandas.DataFrame
        ``model, representation, tau, n_features, top1, top5`` (tau is NaN for the baselines).
        A model without SEM embedder gets the backbone row only.
    """
    representations: list[tuple[str, float]] = [("backbone", float("nan"))]
    if train.logits is not None:
        representations += [("logits", float("nan"))]
        representations += [("sem", tau) for tau in check_taus(taus)]
    settings = RelevanceSettings(l1=probe.l1, l2=probe.l2, epochs=probe.epochs, seed=probe.seed)
    rows = []
    for representation, tau in representations:
        x_train, x_test = probe_inputs(train, test, representation, tau)
        _, stats = fit_probe(x_train, train.labels, x_test, test.labels, settings, device)
        rows.append(
            {
                "model": model,
                "representation": representation,
                "tau": tau,
                "n_features": x_train.shape[1],
                "top1": stats["top1"],
                "top5": stats["top5"],
            }
        )
    return pd.DataFrame(rows)


def accuracy_table(sweep: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """A tau sweep as one row per model: ``backbone``, ``logits``, then ``sem tau=...`` columns.

    Representations a model lacks (a baseline has no logits or SEM) are NaN.
    """
    sem = sweep["representation"] == "sem"
    columns = sweep["representation"].where(~sem, "sem tau=" + sweep["tau"].map("{:g}".format))
    wide = sweep.assign(column=columns).pivot(index="model", columns="column", values=metric)
    taus = sorted(sweep.loc[sem, "tau"].unique())
    order = ["backbone", "logits", *(f"sem tau={tau:g}" for tau in taus)]
    wide = wide.reindex(index=sweep["model"].unique(), columns=[c for c in order if c in wide])
    return wide.rename_axis(index=None, columns=None)
