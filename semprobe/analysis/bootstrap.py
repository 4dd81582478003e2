"""Bootstrap intervals for the relevance procedure: relevance, the K curve, top-1, lifts.

Each resample draws the probe's training images again (class-stratified, so every class keeps
its count) and the test images (plainly), refits the probe on the cached inputs with the full
fit's L1 strength, starting from the full fit when that converged
(:class:`~semprobe.probe.SparseLogisticProbe` with ``warm_start``), rebuilds W_K and scores it
(:mod:`semprobe.bootstrap` draws the rows and reads the percentile intervals). A model and its
random-init twin, or two models, analysed on the same images get the same resample indices, so
a lift, and a difference of two lifts, is bootstrapped *paired*: replicate ``b`` of the
difference is the difference of the replicates ``b``. Why and what it costs: docs/relevance.md.

Examples
--------
>>> import numpy as np
>>> from semprobe.analysis import RelevanceSettings
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(np.arange(4), 30)
>>> x = (rng.normal(size=(120, 6)) + 2 * np.eye(6)[[0, 1, 2, 3]][y]).astype(np.float32)
>>> settings = RelevanceSettings(k=2, k_max=2, bootstrap=5, epochs=30, l1=0.0)
>>> boot = bootstrap_relevance(x, y, x, y, 4, {"coarse": ["a", "a", "b", "b"]}, settings)
>>> table = boot.intervals()
>>> list(table["statistic"].unique())
['relevance_mean', 'curve_mean', 'top1']
>>> bool((table["low"] <= table["high"]).all()), int(table["n"].max())
(True, 5)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from semprobe.analysis.settings import RelevanceSettings
from semprobe.atomic import atomic_path
from semprobe.bootstrap import (
    established,
    labels_digest,
    percentile_interval,
    plain_resample,
    resample_rng,
    stratified_resample,
)
from semprobe.errors import SemprobeError
from semprobe.graph import top_k_graph, two_neighbours
from semprobe.probe import SparseLogisticProbe, top_k_accuracy
from semprobe.relevance import relevance

KEYS = ["statistic", "superclasses", "k"]
INTERVAL_COLUMNS = [*KEYS, "estimate", "low", "high", "n"]
#: The statistics of a model's own bootstrap, and the paired ones added against its twin.
LIFTS = {"relevance_mean": "lift_vs_random_init", "curve_mean": "curve_lift"}


@dataclass(frozen=True)
class Bootstrap:
    """The bootstrap of one model's relevance procedure.

    Attributes
    ----------
    estimates:
        ``statistic, superclasses, k, estimate``: the full-data value of each statistic
        (``superclasses`` is empty and ``k`` missing for ``top1``).
    replicates:
        ``resample, statistic, superclasses, k, value``: each statistic on each resample.
    n, seed, confidence:
        Resamples, the seed they were drawn with, the intervals' confidence.
    digest:
        Of the train and test labels the resamples were drawn from: a paired difference is only
        taken between bootstraps with the same digest, ``n`` and ``seed``.
    warm_start:
        Whether the resamples' probes started from the full fit (only when it converged).
    """

    estimates: pd.DataFrame
    replicates: pd.DataFrame
    n: int
    seed: int
    confidence: float
    digest: str
    warm_start: bool = False

    def intervals(self) -> pd.DataFrame:
        """``statistic, superclasses, k, estimate, low, high, n``: one row per statistic."""
        rows = []
        groups = self.replicates.groupby(KEYS, sort=False, dropna=False)["value"]
        values = {_key(key): group.to_numpy() for key, group in groups}
        for row in self.estimates.itertuples(index=False):
            low, high, n = percentile_interval(
                values[_key((row.statistic, row.superclasses, row.k))], self.confidence
            )
            rows.append([row.statistic, row.superclasses, row.k, row.estimate, low, high, n])
        table = pd.DataFrame(rows, columns=INTERVAL_COLUMNS)
        return table.astype({"k": "Int64", "n": np.int64})


def _key(key: tuple[Any, ...]) -> tuple[str, str, int | None]:
    statistic, superclasses, k = key
    return str(statistic), str(superclasses), None if pd.isna(k) else int(k)


def bootstrap_relevance(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_categories: int,
    groupings: Mapping[str, Sequence[object]],
    settings: RelevanceSettings,
    ks: Sequence[int] | None = None,
    device: str = "cpu",
    full: SparseLogisticProbe | None = None,
) -> Bootstrap:
    """Bootstrap the probe, W_K and its relevance over ``settings.bootstrap`` resamples.

    Parameters
    ----------
    x_train, y_train, x_test, y_test:
        The probe's inputs ``(n, F)`` (any array the probe streams) and integer class labels.
    n_categories:
        C, the rows of W (classes absent from train get zero rows, as in the full procedure).
    groupings:
        Superclass source -> one label per category; all are scored on each resample's W_K.
    settings:
        ``bootstrap`` (resamples), ``confidence``, ``seed``, ``k``, ``rule``, ``multiplicity``,
        and the probe's ``l1``, ``l2`` and ``epochs``.
    ks:
        The K curve's K values (default ``1 .. min(k_max, F)``).
    device:
        The probe's torch device.
    full:
        The probe fitted on all of ``x_train``; fitted here when ``None`` (``l1="auto"`` is
        chosen once, on the full data, and kept for every resample).

    Returns
    -------
    Bootstrap
        Estimates and replicates of ``relevance_mean`` (at ``settings.k``), ``curve_mean`` (each
        K) for every grouping, and ``top1``.
    """
    if settings.bootstrap is None:
        raise SemprobeError("bootstrap_relevance needs settings.bootstrap resamples")
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    width = int(x_train.shape[1])
    ks = list(ks) if ks is not None else list(range(1, min(settings.k_max, width) + 1))
    if full is None:
        full = _fit(x_train, y_train, settings, device, None)
    # A fit stopped by max_epochs is not the optimum: a resample started from it would get twice
    # the passes, and its replicates would measure the budget, not the data. Each resample then
    # repeats the full fit's procedure from zero instead.
    warm = bool(full.converged_)
    all_rows = np.arange(len(y_test))
    estimates = [
        *_statistics(_weights(full, n_categories), groupings, settings, ks),
        ("top1", "", None, _top1(full, x_test, y_test, all_rows)),
    ]
    replicates = []
    for b in range(settings.bootstrap):
        rng = resample_rng(settings.seed, b)
        train_rows = stratified_resample(y_train, rng)
        test_rows = plain_resample(len(y_test), rng)
        probe = _fit(x_train[train_rows], y_train[train_rows], settings, device, full, warm)
        top1 = _top1(probe, x_test, y_test, test_rows)
        weights = _weights(probe, n_categories)
        stats = [*_statistics(weights, groupings, settings, ks), ("top1", "", None, top1)]
        replicates += [(b, *row) for row in stats]
    return Bootstrap(
        estimates=_frame(estimates, [*KEYS, "estimate"]),
        replicates=_frame(replicates, ["resample", *KEYS, "value"]),
        n=settings.bootstrap,
        seed=settings.seed,
        confidence=settings.confidence,
        digest=labels_digest(y_train, y_test),
        warm_start=warm,
    )


def _frame(rows: list[tuple[Any, ...]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({"k": "Int64", columns[-1]: np.float64})


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    settings: RelevanceSettings,
    device: str,
    full: SparseLogisticProbe | None,
    warm: bool = False,
) -> SparseLogisticProbe:
    """A probe fitted on ``(x, y)`` with ``full``'s L1 if given, from its solution if ``warm``."""
    probe = SparseLogisticProbe(
        l1=settings.l1 if full is None else full.l1_,
        l2=settings.l2,
        max_epochs=settings.epochs,
        device=device,
        random_state=settings.seed,
        warm_start=warm,
    )
    if full is not None and warm:
        # Every resample starts from the full fit (not from the previous resample), so each
        # replicate depends on its own resample only.
        probe.classes_, probe.coef_, probe.intercept_ = (
            full.classes_,
            full.coef_,
            full.intercept_,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(x, y)
    return probe


def _weights(probe: SparseLogisticProbe, n_categories: int) -> np.ndarray:
    """``C x F`` float64 weights, zero rows for classes the probe did not see."""
    weights = np.zeros((n_categories, probe.coef_.shape[1]), dtype=np.float64)
    weights[np.asarray(probe.classes_, dtype=np.int64)] = probe.coef_
    return weights


def _top1(probe: SparseLogisticProbe, x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> float:
    """Top-1 accuracy on the test rows ``rows`` (the scores are streamed once, then indexed)."""
    scores = probe.decision_function(x)
    if scores.ndim == 1:  # two classes: the score difference, as scikit-learn returns it
        scores = np.stack([np.zeros_like(scores), scores], axis=1)
    return float(top_k_accuracy(y[rows], scores[rows], 1, classes=probe.classes_))


def _statistics(
    weights: np.ndarray,
    groupings: Mapping[str, Sequence[object]],
    settings: RelevanceSettings,
    ks: Sequence[int],
) -> list[tuple[str, str, int | None, float]]:
    """``relevance_mean`` at K and ``curve_mean`` at each K, for every grouping."""
    rows: list[tuple[str, str, int | None, float]] = []
    means: dict[int, float] = {}
    for source, labels in groupings.items():
        for k in sorted({settings.k, *ks}):
            graph = top_k_graph(weights, k, rule=settings.rule)
            counts = two_neighbours(graph, multiplicity=settings.multiplicity)
            means[k] = relevance(counts, labels, multiplicity=settings.multiplicity).mean
        rows.append(("relevance_mean", source, settings.k, means[settings.k]))
        rows += [("curve_mean", source, k, means[k]) for k in ks]
    return rows


def paired_difference(a: Bootstrap, b: Bootstrap, names: Mapping[str, str]) -> Bootstrap:
    """``a - b`` for the statistics in ``names`` (renamed to its values), resample by resample.

    Raises
    ------
    SemprobeError
        If the two were not resampled alike (other images, resamples or seed): a difference of
        unpaired replicates would be a silent wrong answer.
    """
    if (a.digest, a.n, a.seed) != (b.digest, b.n, b.seed):
        raise SemprobeError(
            "a paired bootstrap difference needs the same images, resamples and seed; got "
            f"{a.n} resamples (seed {a.seed}) and {b.n} (seed {b.seed}) on "
            f"{'the same' if a.digest == b.digest else 'different'} images"
        )
    frames = []
    for column, frame_a, frame_b in (
        ("estimate", a.estimates, b.estimates),
        ("value", a.replicates, b.replicates),
    ):
        left = frame_a[frame_a["statistic"].isin(list(names))].reset_index(drop=True)
        right = frame_b[frame_b["statistic"].isin(list(names))].reset_index(drop=True)
        keys = [c for c in left.columns if c != column]
        if not left[keys].equals(right[keys]):
            raise SemprobeError("the two bootstraps measured different statistics")
        out = left.assign(**{column: left[column] - right[column]})
        frames.append(out.assign(statistic=out["statistic"].map(names)))
    return replace(a, estimates=frames[0], replicates=frames[1])


def with_lift(trained: Bootstrap, reference: Bootstrap) -> Bootstrap:
    """``trained`` with the paired lift over its random-init twin added (at K and per K)."""
    lift = paired_difference(trained, reference, LIFTS)
    return replace(
        trained,
        estimates=pd.concat([trained.estimates, lift.estimates], ignore_index=True),
        replicates=pd.concat([trained.replicates, lift.replicates], ignore_index=True),
    )


def lift_differences(bootstraps: Mapping[str, Bootstrap]) -> pd.DataFrame:
    """The difference of two models' lifts, for every pair of models that have a lift.

    Returns
    -------
    pandas.DataFrame
        ``model, other, superclasses, estimate, low, high, n, established``: ``model``'s lift
        minus ``other``'s, paired over the resamples; ``established`` when the interval
        excludes 0. Empty when fewer than two models have a lift.
    """
    names = [
        m
        for m, b in bootstraps.items()
        if (b.estimates["statistic"] == "lift_vs_random_init").any()
    ]
    rows = []
    for i, model in enumerate(names):
        for other in names[i + 1 :]:
            diff = paired_difference(
                bootstraps[model], bootstraps[other], {"lift_vs_random_init": "lift_difference"}
            ).intervals()
            for row in diff.itertuples(index=False):
                bounds = [row.estimate, row.low, row.high, row.n, established(row.low, row.high)]
                rows.append([model, other, row.superclasses, *bounds])
    columns = ["model", "other", "superclasses", "estimate", "low", "high", "n", "established"]
    return pd.DataFrame(rows, columns=columns)


def write_bootstrap(folder: Path, boot: Bootstrap) -> None:
    """``bootstrap.csv`` (the intervals) and ``bootstrap_replicates.csv`` into ``folder``."""
    for name, frame in (
        ("bootstrap.csv", boot.intervals()),
        ("bootstrap_replicates.csv", boot.replicates),
    ):
        with atomic_path(folder / name, suffix=".csv") as tmp:
            frame.to_csv(tmp, index=False)


def bootstrap_summary(boot: Bootstrap, k: int) -> dict[str, Any]:
    """The summary.json entry: resamples, seed, confidence and the intervals at K."""
    entry: dict[str, Any] = {
        "n": boot.n,
        "seed": boot.seed,
        "confidence": boot.confidence,
        "warm_start": boot.warm_start,
    }
    by_source: dict[str, dict[str, Any]] = {}
    for row in boot.intervals().itertuples(index=False):
        if row.statistic == "curve_mean" or row.statistic == "curve_lift":
            continue
        interval = {
            "estimate": _finite(row.estimate),
            "low": _finite(row.low),
            "high": _finite(row.high),
            "n": int(row.n),
        }
        if row.statistic == "top1":
            entry["top1"] = interval
            continue
        by_source.setdefault(row.superclasses, {})[row.statistic] = interval
    primary = next(iter(by_source))
    entry.update(by_source[primary])
    entry["k"] = k
    entry["by_superclasses"] = by_source
    return entry


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def write_lift_differences(folder: Path, bootstraps: Mapping[str, Bootstrap]) -> pd.DataFrame:
    """:func:`lift_differences` of ``bootstraps``, written as ``folder/lift_differences.csv``.

    Nothing is written when fewer than two models have a lift.
    """
    table = lift_differences(bootstraps)
    if len(table):
        with atomic_path(folder / "lift_differences.csv", suffix=".csv") as tmp:
            table.to_csv(tmp, index=False)
    return table
