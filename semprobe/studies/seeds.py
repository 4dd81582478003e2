"""Multi-seed studies: one study per pretraining seed, and tables across the seeds.

A study file with ``seeds = [0, 1, 2]`` (:mod:`semprobe.studies.seed_data`) is run once per seed
into ``<out>/seed-<s>`` (each a complete run directory the dashboard opens); then
``seeds.csv`` holds every number of every seed (the studies' tidy tables with a ``seed`` column,
and each grouping's relevance and lift), ``seed_summary.csv`` their mean, standard deviation
(``ddof=1``) and per-seed values, and ``seed_lift_differences.csv`` the paired comparison of two
models across seeds: the per-seed difference of their lifts over the random-init twin, with a
Student-t interval at the ``[relevance]`` confidence (a seed's models share its data order and
seeds, so the differences pair). A difference whose interval contains 0 is not established.

Examples
--------
>>> import pandas as pd
>>> per_seed = pd.DataFrame(
...     {"seed": [0, 1, 2], "model": "m", "analysis": "relevance", "representation": "sem",
...      "tau": float("nan"), "metric": "top1", "value": [0.30, 0.32, 0.34]}
... )
>>> row = seed_summary(per_seed).iloc[0]
>>> round(float(row["mean"]), 3), round(float(row["std"]), 3), int(row["n_seeds"])
(0.32, 0.02, 3)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from semprobe.atomic import atomic_path, write_json
from semprobe.bootstrap import established
from semprobe.configfile import read_table_file
from semprobe.studies.files import load_study
from semprobe.studies.seed_data import check_seeds
from semprobe.studies.study import Study, StudyResult, Trainer

KEYS = ["model", "analysis", "representation", "tau", "metric"]


@dataclass
class SeedStudyResult:
    """What a multi-seed study produced.

    Attributes
    ----------
    results: seed -> that seed's :class:`StudyResult`.
    per_seed: ``seed, model, analysis, representation, tau, metric, value`` rows.
    summary: ``model, analysis, representation, tau, metric, mean, std, n_seeds, seed_<s>...``.
    lift_differences: ``model, other, superclasses, mean, std, low, high, n_seeds,
        established, seed_<s>...``: paired differences of two models' lifts across the seeds.
    out: the folder holding ``seed-<s>/`` and the tables.
    """

    results: dict[int, StudyResult]
    per_seed: pd.DataFrame
    summary: pd.DataFrame
    lift_differences: pd.DataFrame
    out: Path
    confidence: float = 0.95


@dataclass
class SeedStudy:
    """The same study at several seeds; :func:`load_seeded_study` makes one from a file."""

    studies: dict[int, Study]
    out: Path
    seeds: list[int] = field(default_factory=list)

    def run(self, out: str | Path | None = None) -> SeedStudyResult:
        """Run every seed's study into ``out/seed-<s>``, then write the tables across seeds."""
        folder = Path(out) if out is not None else self.out
        results = {s: study.run(folder / f"seed-{s}") for s, study in self.studies.items()}
        confidence = next(iter(self.studies.values())).relevance.confidence
        per_seed = per_seed_table(results)
        summary = seed_summary(per_seed)
        differences = seed_lift_differences(per_seed, confidence)
        for name, table in (
            ("seeds.csv", per_seed),
            ("seed_summary.csv", summary),
            ("seed_lift_differences.csv", differences),
        ):
            with atomic_path(folder / name, suffix=".csv") as tmp:
                table.to_csv(tmp, index=False)
        write_json(
            folder / "seeds.json",
            {"seeds": list(results), "runs": [f"seed-{s}" for s in results]},
        )
        return SeedStudyResult(results, per_seed, summary, differences, folder, confidence)


def load_seeded_study(
    path: str | Path, trainer: Trainer | None = None, seeds: Sequence[int] | None = None
) -> SeedStudy | None:
    """The multi-seed study of a file with ``seeds = [...]``; ``None`` for a file without.

    ``seeds`` (``semprobe study --seeds``) replaces the file's list, or makes a file without
    one a multi-seed study. Every seed's study is built (and so checked) before any runs.
    """
    file = Path(path)
    data = read_table_file(file, "study file")
    if seeds is None and "seeds" not in data:
        return None
    where = str(file) if seeds is None else "--seeds"
    chosen = check_seeds(data["seeds"] if seeds is None else list(seeds), where)
    studies: dict[int, Study] = {}
    out = Path()
    for seed in chosen:
        studies[seed], seed_out = load_study(file, trainer, seed=seed, seeds=chosen)
        out = seed_out.parent
    return SeedStudy(studies, out, chosen)


def per_seed_table(results: Mapping[int, StudyResult]) -> pd.DataFrame:
    """Every seed's tidy table, plus each grouping's relevance mean and lift, with ``seed``."""
    frames = []
    for seed, result in results.items():
        frames.append(result.table.assign(seed=seed))
        by_source = result.relevance_by_superclasses
        for column in ("relevance_mean", "lift_vs_random_init"):
            if column not in by_source:
                continue
            features = dict(
                zip(result.relevance["model"], result.relevance["features"], strict=True)
            )
            frames.append(
                pd.DataFrame(
                    {
                        "seed": seed,
                        "model": by_source["model"],
                        "analysis": "relevance",
                        "representation": by_source["model"].map(features),
                        "tau": math.nan,
                        "metric": column + "[" + by_source["superclasses"] + "]",
                        "value": pd.to_numeric(by_source[column]),
                    }
                )
            )
    table = pd.concat(frames, ignore_index=True)
    return table[["seed", *KEYS, "value"]]


def seed_summary(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (``ddof=1``; NaN for one seed) and per-seed values of each."""
    wide = per_seed.pivot_table(
        index=KEYS, columns="seed", values="value", aggfunc="first", dropna=False, sort=False
    )
    wide = wide.dropna(how="all")
    wide.columns = [f"seed_{s}" for s in wide.columns]
    values = wide.to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    n = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(values, axis=1) / np.maximum(n, 1), np.nan)
        squares = np.nansum((values - mean[:, None]) ** 2, axis=1)
        std = np.where(n > 1, np.sqrt(squares / np.maximum(n - 1, 1)), np.nan)
    summary = wide.assign(mean=mean, std=std, n_seeds=n.astype(np.int64))
    return summary.reset_index()[[*KEYS, "mean", "std", "n_seeds", *wide.columns]]


def t_interval(values: Sequence[float], confidence: float) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (NaN bounds for fewer than two)."""
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if array.size < 2:
        return math.nan, math.nan
    half = stats.t.ppf((1 + confidence) / 2, array.size - 1) * array.std(ddof=1)
    half /= math.sqrt(array.size)
    return float(array.mean() - half), float(array.mean() + half)


def seed_lift_differences(per_seed: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """The paired difference of two models' lifts across seeds, for every pair with lifts."""
    lifts = per_seed[per_seed["metric"].str.startswith("lift_vs_random_init[")]
    lifts = lifts.dropna(subset=["value"])
    columns = ["model", "other", "superclasses", "mean", "std", "low", "high", "n_seeds"]
    rows = []
    for metric, group in lifts.groupby("metric", sort=False):
        source = str(metric)[len("lift_vs_random_init[") : -1]
        wide = group.pivot_table(index="seed", columns="model", values="value", sort=False)
        models = list(wide.columns)
        for i, model in enumerate(models):
            for other in models[i + 1 :]:
                diff = (wide[model] - wide[other]).dropna()
                low, high = t_interval(diff.to_list(), confidence)
                std = float(diff.std(ddof=1)) if len(diff) > 1 else math.nan
                per = {f"seed_{s}": float(v) for s, v in diff.items()}
                bounds = [float(diff.mean()), std, low, high, len(diff), established(low, high)]
                rows.append(([model, other, source, *bounds], per))
    table = pd.DataFrame([r[0] for r in rows], columns=[*columns, "established"])
    return pd.concat([table, pd.DataFrame([r[1] for r in rows])], axis=1)
