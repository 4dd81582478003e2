"""The report's tables, from the accumulated sums and the per-simplex histograms."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from semprobe.entropy.moments import Moments, Spec
from semprobe.entropy.quantiles import fine_quantiles, quantile_name
from semprobe.entropy.report import EntropyReport
from semprobe.errors import SemprobeError


@dataclass(frozen=True)
class _Totals:
    """The accumulated sums as numpy arrays: per (tau, simplex), per tau and per (tau, class)."""

    n: int
    means: np.ndarray
    m2s: np.ndarray
    effs: np.ndarray
    near: np.ndarray
    class_sums: np.ndarray
    hists: np.ndarray

    @classmethod
    def of(cls, total: Moments, fine: np.ndarray) -> _Totals:
        spec = total.spec
        if total.hist is not None:
            hists = total.hist.cpu().numpy()
        else:
            merged = fine.sum(axis=2)
            hists = merged.reshape(spec.t_count, spec.bins, -1).sum(axis=2)
        return cls(
            n=total.n,
            means=total.mean.cpu().numpy(),
            m2s=np.maximum(total.m2.cpu().numpy(), 0.0),
            effs=total.eff.cpu().numpy(),
            near=total.near.cpu().numpy(),
            class_sums=total.class_sum.cpu().numpy(),
            hists=hists,
        )


@dataclass(frozen=True)
class _Classes:
    """The classes with at least one sample: indices, table keys, sizes and superclasses."""

    present: np.ndarray
    keys: list[Any]
    counts: np.ndarray
    supers: list[str] | None


def build_report(
    total: Moments,
    fine: np.ndarray,
    taus: list[float],
    probs: list[float],
    labels: np.ndarray | None,
    class_names: Sequence[str] | None,
    superclass_of: Sequence[str] | Mapping[Any, str] | None,
) -> EntropyReport:
    """Turn the accumulated sums and the ``(T, quantile_bins, L)`` histograms into tables.

    ``labels`` are the ``(N,)`` int64 class indices the sums were taken with, or None.

    Raises
    ------
    SemprobeError
        If ``superclass_of`` has no entry for a class with samples.
    """
    spec = total.spec
    class_counts = (
        np.bincount(labels, minlength=spec.num_classes) if labels is not None else np.zeros(0)
    )
    classes = _classes(class_counts, class_names, superclass_of)
    sums = _Totals.of(total, fine)
    per_simplex, histogram, per_class, per_superclass, summary = [], [], [], [], []
    for t, tau in enumerate(taus):
        per_simplex.append(_per_simplex(spec, sums, t, tau, fine[t], probs))
        histogram.append(_histogram(spec, tau, sums.hists[t]))
        summary.append(_summary_row(spec, sums, t, tau))
        if classes.present.size:
            class_sums = sums.class_sums[t, classes.present]
            per_class.append(_per_class(spec, tau, classes, class_sums))
            if classes.supers is not None:
                per_superclass.append(_per_superclass(spec, tau, classes, class_sums))
    return EntropyReport(
        per_simplex=pd.concat(per_simplex, ignore_index=True),
        histogram=pd.concat(histogram, ignore_index=True),
        per_class=_concat(per_class, "class"),
        per_superclass=_concat(per_superclass, "superclass"),
        summary=pd.DataFrame(summary),
        meta=_meta(spec, sums.n, taus, probs),
    )


def _classes(
    class_counts: np.ndarray,
    class_names: Sequence[str] | None,
    superclass_of: Sequence[str] | Mapping[Any, str] | None,
) -> _Classes:
    present = np.flatnonzero(class_counts > 0)
    keys: list[Any] = (
        [class_names[c] for c in present.tolist()] if class_names is not None else present.tolist()
    )
    supers = (
        _superclass_table(superclass_of, present, class_names)
        if superclass_of is not None
        else None
    )
    return _Classes(present, keys, class_counts[present].astype(np.int64), supers)


def _superclass_table(
    superclass_of: Sequence[str] | Mapping[Any, str],
    present: np.ndarray,
    class_names: Sequence[str] | None,
) -> list[str]:
    """The superclass of every present class index (a mapping is keyed by name, else label)."""
    out = []
    for c in present.tolist():
        name = class_names[c] if class_names is not None else c
        if isinstance(superclass_of, Mapping):
            if name in superclass_of:
                out.append(str(superclass_of[name]))
            elif c in superclass_of:
                out.append(str(superclass_of[c]))
            else:
                raise SemprobeError(f"superclass_of has no entry for class {name!r}")
        else:
            if c >= len(superclass_of):
                raise SemprobeError(
                    f"superclass_of has {len(superclass_of)} entries, no entry for class {name!r}"
                )
            out.append(str(superclass_of[c]))
    return out


def _per_simplex(
    spec: Spec, sums: _Totals, t: int, tau: float, fine: np.ndarray, probs: list[float]
) -> pd.DataFrame:
    """The per-simplex rows of tau number ``t``; ``fine`` is its ``(quantile_bins, L)`` counts."""
    log_v, simplices, n = spec.log_v, spec.num_simplices, sums.n
    mean, std = sums.means[t], np.sqrt(sums.m2s[t] / n)
    frame = pd.DataFrame(
        {
            "tau": np.full(simplices, tau),
            "simplex": np.arange(simplices),
            "mean": mean,
            "std": std,
            "mean_norm": mean / log_v,
            "std_norm": std / log_v,
        }
    )
    qs = fine_quantiles(np.ascontiguousarray(fine.T), n, probs, log_v / spec.quantile_bins)
    for j, p in enumerate(probs):
        frame[quantile_name(p)] = qs[:, j]
    frame["eff_vertices"] = sums.effs[t] / n
    return frame


def _histogram(spec: Spec, tau: float, counts: np.ndarray) -> pd.DataFrame:
    """The overall histogram of one tau, ``spec.bins`` equal bins on ``[0, ln V]``."""
    edges = np.linspace(0.0, spec.log_v, spec.bins + 1)
    return pd.DataFrame(
        {
            "tau": np.full(spec.bins, tau),
            "bin_left": edges[:-1],
            "bin_right": edges[1:],
            "count": counts.astype(np.int64),
        }
    )


def _summary_row(spec: Spec, sums: _Totals, t: int, tau: float) -> dict[str, Any]:
    """The summary of tau number ``t`` over all (sample, simplex) pairs."""
    n, log_v = sums.n, spec.log_v
    pairs = n * spec.num_simplices
    mean = sums.means[t]
    grand = float(mean.mean())
    # M2 over all pairs = within-simplex M2 + the spread of the simplex means.
    m2_total = float(sums.m2s[t].sum()) + n * float(((mean - grand) ** 2).sum())
    near = sums.near
    return {
        "tau": tau,
        "mean": grand,
        "std": math.sqrt(m2_total / pairs),
        "mean_norm": grand / log_v,
        "frac_one_hot": float(near[0, t]) / pairs,
        "frac_two_hot": float(near[1, t]) / pairs,
        "frac_uniform": float(near[2, t]) / pairs,
        "eff_vertices": float(sums.effs[t].sum()) / pairs,
        "n_samples": n,
        "L": spec.num_simplices,
        "V": spec.vocab,
    }


def _per_class(spec: Spec, tau: float, classes: _Classes, sums: np.ndarray) -> pd.DataFrame:
    """Mean entropy per present class; ``sums`` are its entropy sums over samples and simplices."""
    counts = classes.counts
    return pd.DataFrame(
        {
            "tau": np.full(classes.present.size, tau),
            "class": classes.keys,
            "mean": sums / (counts * spec.num_simplices),
            "n_samples": counts,
        }
    )


def _per_superclass(spec: Spec, tau: float, classes: _Classes, sums: np.ndarray) -> pd.DataFrame:
    """Mean entropy per superclass, from the per-class entropy sums ``sums``."""
    grouped = (
        pd.DataFrame({"superclass": classes.supers, "sum": sums, "n_samples": classes.counts})
        .groupby("superclass", sort=True)
        .sum()
        .reset_index()
    )
    sizes = grouped["n_samples"].to_numpy().astype(np.int64)
    return pd.DataFrame(
        {
            "tau": np.full(len(grouped), tau),
            "superclass": grouped["superclass"].to_numpy(),
            "mean": grouped["sum"].to_numpy() / (sizes * spec.num_simplices),
            "n_samples": sizes,
        }
    )


def _meta(spec: Spec, n: int, taus: list[float], probs: list[float]) -> dict[str, Any]:
    return {
        "L": spec.num_simplices,
        "V": spec.vocab,
        "n_samples": n,
        "taus": taus,
        "bins": spec.bins,
        "quantile_bins": spec.quantile_bins,
        "quantiles": probs,
        "quantile_resolution": spec.log_v / spec.quantile_bins,
        "eps": spec.eps,
    }


def _concat(frames: list[pd.DataFrame], key: str) -> pd.DataFrame:
    """Concatenate per-tau tables; an empty table still has its columns and dtypes."""
    if frames:
        return pd.concat(frames, ignore_index=True)
    empty = {
        "tau": pd.Series(dtype="float64"),
        key: pd.Series(dtype=object),
        "mean": pd.Series(dtype="float64"),
        "n_samples": pd.Series(dtype="int64"),
    }
    return pd.DataFrame(empty)
