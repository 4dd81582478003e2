"""The report's tables, from the accumulated sums and the per-simplex histograms."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from semprobe.entropy.bins import SUB_BINS, floor_nats
from semprobe.entropy.moments import Moments, Spec
from semprobe.entropy.quantiles import consistent_quantiles, fine_quantiles, quantile_name
from semprobe.entropy.report import EntropyReport
from semprobe.errors import SemprobeError


@dataclass(frozen=True)
class _Totals:
    """The accumulated sums as numpy arrays: per (tau, simplex), per tau and per (tau, class).

    Means are clipped into ``[min, max]`` and standard deviations to the Bhatia-Davis bound
    ``sqrt((max - mean)(mean - min))``: the exact values satisfy both, so rounding can only be
    reduced, and no table contradicts itself.
    """

    n: int
    means: np.ndarray
    m2s: np.ndarray
    effs: np.ndarray
    near: np.ndarray
    class_sums: np.ndarray
    hists: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    class_lo: np.ndarray
    class_hi: np.ndarray

    @classmethod
    def of(cls, total: Moments, fine: np.ndarray) -> _Totals:
        spec = total.spec
        if total.hist is not None:
            hists = total.hist.cpu().numpy()
        else:
            merged = fine.sum(axis=2)
            coarse = spec.layout.coarse_map(spec.bins)
            hists = np.stack(
                [np.bincount(coarse, weights=row, minlength=spec.bins) for row in merged]
            ).astype(np.int64)
        lo = total.lo.cpu().numpy().astype(np.float64)
        hi = total.hi.cpu().numpy().astype(np.float64)
        means = np.clip(total.mean.cpu().numpy(), lo, hi)
        m2s = np.minimum(
            np.maximum(total.m2.cpu().numpy(), 0.0), total.n * (hi - means) * (means - lo)
        )
        return cls(
            n=total.n,
            means=means,
            m2s=m2s,
            effs=total.eff.cpu().numpy(),
            near=total.near.cpu().numpy(),
            class_sums=total.class_sum.cpu().numpy(),
            hists=hists,
            lo=lo,
            hi=hi,
            class_lo=total.class_lo.cpu().numpy().astype(np.float64),
            class_hi=total.class_hi.cpu().numpy().astype(np.float64),
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
    by_class: np.ndarray,
    taus: list[float],
    probs: list[float],
    labels: np.ndarray | None,
    class_names: Sequence[str] | None,
    superclass_of: Sequence[str] | Mapping[Any, str] | None,
) -> EntropyReport:
    """Turn the accumulated sums and the fine histograms into tables.

    ``fine`` is ``(T, fine_bins, L)``, ``by_class`` ``(T, fine_bins, C)``; ``labels`` are the
    ``(N,)`` int64 class indices the sums were taken with, or None.

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
    edges = spec.layout.edges()
    per_simplex, histogram, per_class, per_superclass, summary = [], [], [], [], []
    for t, tau in enumerate(taus):
        per_simplex.append(_per_simplex(spec, sums, t, tau, fine[t], probs, edges))
        histogram.append(_histogram(spec, tau, sums.hists[t]))
        summary.append(_summary_row(spec, sums, t, tau))
        if classes.present.size:
            groups = _ClassGroup.of_classes(spec, sums, t, classes, by_class[t])
            per_class.append(groups.table(tau, "class", classes.keys, probs, edges))
            if classes.supers is not None:
                supers = groups.merged(classes.supers)
                per_superclass.append(supers.table(tau, "superclass", supers.keys, probs, edges))
    return EntropyReport(
        per_simplex=pd.concat(per_simplex, ignore_index=True),
        histogram=pd.concat(histogram, ignore_index=True),
        per_class=_concat(per_class, "class", probs),
        per_superclass=_concat(per_superclass, "superclass", probs),
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


def _quantile_columns(
    counts: np.ndarray,
    n: np.ndarray,
    probs: list[float],
    edges: np.ndarray,
    mean: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
) -> dict[str, np.ndarray]:
    """``q..`` columns from ``(R, fine_bins)`` counts, consistent with mean, min and max."""
    estimates = fine_quantiles(counts, n, probs, edges)
    qs = consistent_quantiles(estimates, n, probs, mean, low, high)
    return {quantile_name(p): qs[:, j] for j, p in enumerate(probs)}


def _per_simplex(
    spec: Spec,
    sums: _Totals,
    t: int,
    tau: float,
    fine: np.ndarray,
    probs: list[float],
    edges: np.ndarray,
) -> pd.DataFrame:
    """The per-simplex rows of tau number ``t``; ``fine`` is its ``(fine_bins, L)`` counts."""
    log_v, simplices, n = spec.log_v, spec.num_simplices, sums.n
    mean, std = sums.means[t], np.sqrt(sums.m2s[t] / n)
    low, high = sums.lo[t], sums.hi[t]
    frame = pd.DataFrame(
        {
            "tau": np.full(simplices, tau),
            "simplex": np.arange(simplices),
            "mean": mean,
            "std": std,
            "mean_norm": mean / log_v,
            "std_norm": std / log_v,
            "min": low,
            "max": high,
        }
    )
    counts = np.ascontiguousarray(fine.T)
    n_rows = np.full(simplices, n, dtype=np.int64)
    for name, column in _quantile_columns(counts, n_rows, probs, edges, mean, low, high).items():
        frame[name] = column
    frame["eff_vertices"] = sums.effs[t] / n
    return frame


@dataclass(frozen=True)
class _ClassGroup:
    """Per-class (or per-superclass) statistics over (sample, simplex) pairs at one tau."""

    keys: list[Any]
    samples: np.ndarray
    pairs: np.ndarray
    sums: np.ndarray
    low: np.ndarray
    high: np.ndarray
    counts: np.ndarray

    @classmethod
    def of_classes(
        cls, spec: Spec, sums: _Totals, t: int, classes: _Classes, by_class: np.ndarray
    ) -> _ClassGroup:
        """The present classes; ``by_class`` is the tau's ``(fine_bins, C)`` counts."""
        present = classes.present
        return cls(
            keys=list(classes.keys),
            samples=classes.counts,
            pairs=classes.counts * spec.num_simplices,
            sums=sums.class_sums[t, present],
            low=sums.class_lo[t, present],
            high=sums.class_hi[t, present],
            counts=np.ascontiguousarray(by_class[:, present].T),
        )

    def merged(self, groups: list[str]) -> _ClassGroup:
        """The classes merged by ``groups`` (one name per class), in sorted order."""
        names = sorted(set(groups))
        index = np.array([names.index(g) for g in groups])
        k = len(names)

        def add(values: np.ndarray) -> np.ndarray:
            out = np.zeros((k, *values.shape[1:]), dtype=values.dtype)
            np.add.at(out, index, values)
            return out

        low, high = np.full(k, np.inf), np.full(k, -np.inf)
        np.minimum.at(low, index, self.low)
        np.maximum.at(high, index, self.high)
        return _ClassGroup(
            names, add(self.samples), add(self.pairs), add(self.sums), low, high, add(self.counts)
        )

    def table(
        self, tau: float, key: str, keys: list[Any], probs: list[float], edges: np.ndarray
    ) -> pd.DataFrame:
        """``tau, <key>, mean, min, max, q.., n_samples``."""
        mean = np.clip(self.sums / self.pairs, self.low, self.high)
        frame = pd.DataFrame(
            {
                "tau": np.full(len(keys), tau),
                key: keys,
                "mean": mean,
                "min": self.low,
                "max": self.high,
            }
        )
        columns = _quantile_columns(
            self.counts, self.pairs, probs, edges, mean, self.low, self.high
        )
        for name, column in columns.items():
            frame[name] = column
        frame["n_samples"] = self.samples.astype(np.int64)
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
    low, high = float(sums.lo[t].min()), float(sums.hi[t].max())
    grand = min(max(float(mean.mean()), low), high)
    # M2 over all pairs = within-simplex M2 + the spread of the simplex means.
    m2_total = float(sums.m2s[t].sum()) + n * float(((mean - grand) ** 2).sum())
    m2_total = min(m2_total, pairs * (high - grand) * (grand - low))
    near = sums.near
    return {
        "tau": tau,
        "mean": grand,
        "std": math.sqrt(max(m2_total, 0.0) / pairs),
        "mean_norm": grand / log_v,
        "min": low,
        "max": high,
        "frac_one_hot": float(near[0, t]) / pairs,
        "frac_two_hot": float(near[1, t]) / pairs,
        "frac_uniform": float(near[2, t]) / pairs,
        "eff_vertices": float(sums.effs[t].sum()) / pairs,
        "n_samples": n,
        "L": spec.num_simplices,
        "V": spec.vocab,
    }


def _meta(spec: Spec, n: int, taus: list[float], probs: list[float]) -> dict[str, Any]:
    return {
        "L": spec.num_simplices,
        "V": spec.vocab,
        "n_samples": n,
        "taus": taus,
        "bins": spec.bins,
        "quantile_bins": spec.quantile_bins,
        "quantiles": probs,
        # A quantile is within a bin of the exact one: at most this many nats, and at most
        # 1/16 of its value above ``quantile_floor``.
        "quantile_resolution": spec.log_v / spec.quantile_bins,
        "quantile_relative_resolution": 1.0 / SUB_BINS,
        "quantile_floor": floor_nats(spec.log_v, spec.quantile_bins),
        "eps": spec.eps,
    }


def _concat(frames: list[pd.DataFrame], key: str, probs: list[float]) -> pd.DataFrame:
    """Concatenate per-tau tables; an empty table still has its columns and dtypes."""
    if frames:
        return pd.concat(frames, ignore_index=True)
    empty = {
        "tau": pd.Series(dtype="float64"),
        key: pd.Series(dtype=object),
        "mean": pd.Series(dtype="float64"),
        "min": pd.Series(dtype="float64"),
        "max": pd.Series(dtype="float64"),
        **{quantile_name(p): pd.Series(dtype="float64") for p in probs},
        "n_samples": pd.Series(dtype="int64"),
    }
    return pd.DataFrame(empty)
