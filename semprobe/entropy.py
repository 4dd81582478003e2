"""Entropy analysis of SEM outputs, streamed from cached pre-softmax logits.

Given logits of shape ``(N, L*V)`` (an in-memory array or a ``np.memmap`` of a cached ``.npy``,
float16 or float32), :func:`entropy_report` computes, for every temperature in a set of taus, the
Shannon entropy (natural log) of every (sample, simplex) pair of ``softmax(z_i / tau)`` and
summarises it:

* per simplex: mean and standard deviation of ``H`` and of ``H / ln V``, quantiles, mean number of
  "effective vertices" ``exp(H)``;
* the histogram of ``H`` over all ``N * L`` pairs on ``[0, ln V]`` (the paper's entropy figure);
* per class and per superclass: mean entropy over the class's samples and all simplices;
* the fraction of pairs that are near one-hot (``H < eps``), near two-hot (``|H - ln 2| < eps``)
  and near uniform (``H > ln V - eps``).

The logits are read once, in chunks of rows, and every tau is computed from the same chunk, so a
file that is not in the page cache is read from disk only once. Memory is bounded by the chunk
size, never ``N x L x V``; pages of a memory map are released from the resident set once used.
On a CPU the work runs on ``torch.get_num_threads()`` worker threads, each with single-threaded
torch ops on cache-sized blocks; the cost is dominated by one ``exp2`` per logit and tau.
Per-simplex sums are accumulated in float64; the entropy itself is computed in float32 with the
log-sum-exp form ``H = ln S - sum_j e_j s_j / S`` where ``s = (z - max z) / tau`` and
``e = exp(s)``, ``S = sum_j e_j``. Both terms are non-negative, so nothing cancels, and it agrees
with :func:`semprobe.sem.simplex_entropy` to float32 precision.

Quantiles need every value; they are read off a per-simplex histogram of ``quantile_bins`` equal
bins on ``[0, ln V]`` (linear interpolation inside the bin). The estimate lies in the same bin as
the exact inverted-CDF quantile, so it is within ``ln V / quantile_bins`` of it (0.01 nats for
V = 13 and the default 256 bins).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from semprobe.atomic import atomic_path, ensure_writable_dir, write_json
from semprobe.errors import SemprobeError
from semprobe.sem import check_shape
from semprobe.validation import check_tau

__all__ = ["EntropyReport", "RowPager", "default_chunk_rows", "entropy_kernel", "entropy_report"]

LN2 = math.log(2.0)
LOG2E = 1.0 / LN2

DEFAULT_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)

# Logit elements per chunk read when ``chunk_rows`` is not given (64 MiB of float16), and the cap
# on each of the two (taus x rows x simplices) int32 histogram-index buffers of a chunk.
_CHUNK_ELEMS = 1 << 25
_CODE_BUF_ELEMS = 1 << 24
# Elements of a (taus, V, rows*L) kernel buffer and of a (rows, L) statistics block per tau on a
# CPU: small enough to stay in the last-level cache, large enough that the per-call overhead
# (which holds the GIL, and so limits how many worker threads help) stays small. A GPU takes
# much larger blocks. Float32 counts in a statistics block are exact below 2**24 entries.
_CPU_WORK_ELEMS = 1 << 21
_CPU_STATS_ELEMS = 1 << 20
_GPU_WORK_ELEMS = 1 << 26
_GPU_STATS_ELEMS = 1 << 23

_MAX_COEF = 1e30
_FLOAT32_BIG = 3e38

_TABLES = ("per_simplex", "histogram", "per_class", "per_superclass", "summary")

_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------
# The kernel
# ---------------------------------------------------------------------------------------------


def entropy_kernel(logits: Tensor, num_simplices: int, vocab: int, taus: Sequence[float]) -> Tensor:
    """Per-simplex entropy of a block of logits at several temperatures at once.

    Equivalent to stacking :func:`semprobe.sem.simplex_entropy` over ``taus``, but several times
    faster on a CPU: the block is transposed once to ``(V, rows*L)`` so that every reduction over
    the V vertices is a vectorised sum of V rows, the per-group maximum is subtracted once for
    all taus, and ``exp`` is computed as the cheaper ``exp2`` of pre-scaled values.

    Parameters
    ----------
    logits:
        ``(rows, L*V)`` tensor, any floating dtype; it is read, not modified.
    num_simplices, vocab:
        L and V.
    taus:
        Temperatures, each > 0.

    Returns
    -------
    Tensor
        float32, shape ``(len(taus), rows, L)``, values in ``[0, ln V]``.
    """
    taus = [check_tau(t) for t in taus]
    coef = _coefficients(taus, logits.device)
    check_shape(logits.shape[-1], num_simplices, vocab)
    rows = logits.shape[0]
    n = rows * num_simplices
    y = torch.empty((vocab, n), dtype=torch.float32, device=logits.device)
    lowest = _shift(logits.reshape(n, vocab), y)
    out = torch.empty((len(coef), n), dtype=torch.float32, device=logits.device)
    scaled = torch.empty((len(coef), vocab, n), dtype=torch.float32, device=logits.device)
    clamp = lowest * float(coef.max()) < -_FLOAT32_BIG
    _entropy_shifted(y, coef, out, scaled, torch.empty_like(scaled), clamp)
    return out.view(len(coef), rows, num_simplices)


def _coefficients(taus: Sequence[float], device: torch.device) -> Tensor:
    """``log2(e) / tau`` per tau, shape ``(T, 1, 1)``: the factor that turns exp into exp2.

    Capped at 1e30 (tau below ~1e-30), so that it is finite; vertices below the maximum then
    have weight 0 unless their logit is within ~1e-28 of it.
    """
    values = [min(LOG2E / t, _MAX_COEF) for t in taus]
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)


def _shift(grouped: Tensor, y: Tensor, guard: bool = True) -> float:
    """``y = (grouped - group max)`` transposed: ``(n, V)`` any dtype to ``(V, n)`` float32.

    With ``guard``, ``y`` is floored at -3e38 (finite) and its lowest value returned; without
    (inputs whose range cannot overflow), 0.0 is returned.
    """
    # One strided copy converts to float32 and puts the vertex axis first.
    y.copy_(grouped.t())
    # The group maximum is shared by all taus: max(z / tau) = max(z) / tau.
    y.sub_(y.amax(dim=0))
    if not guard:
        return 0.0
    y.clamp_(min=-_FLOAT32_BIG)
    return float(y.amin())


def _entropy_shifted(
    y: Tensor, coef: Tensor, out: Tensor, scaled: Tensor, expd: Tensor, clamp: bool = False
) -> None:
    """Fill ``out`` (``(T, n)``) with the entropies of the shifted groups ``y`` (``(V, n)``).

    ``scaled`` and ``expd`` are ``(T, V, n)`` float32 scratch. ``clamp`` is needed when
    ``y * coef`` can overflow: -inf * 0 would be nan, while the weight is 0 anyway.
    """
    # s2 = (z - max) / (tau ln 2) <= 0, so e = 2**s2 = exp((z - max) / tau) lies in (0, 1].
    torch.mul(y.unsqueeze(0), coef, out=scaled)
    if clamp:
        scaled.clamp_(min=-_FLOAT32_BIG)
    torch.exp2(scaled, out=expd)
    total = expd.sum(dim=1)
    weighted = scaled.mul_(expd).sum(dim=1)
    # H = ln S - ln 2 * sum(e * s2) / S; both terms are >= 0, so nothing cancels.
    weighted.div_(total).mul_(-LN2)
    torch.add(weighted, total.log_(), out=out)
    out.clamp_(min=0.0)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntropyReport:
    """Entropy statistics of a set of SEM representations at one or more temperatures.

    Attributes
    ----------
    per_simplex:
        One row per (tau, simplex): ``tau, simplex, mean, std, mean_norm, std_norm, q05 ... q95,
        eff_vertices`` (``*_norm`` are for ``H / ln V``; ``std`` is the population std).
    histogram:
        ``tau, bin_left, bin_right, count``; for every tau the counts sum to ``N * L``.
    per_class:
        ``tau, class, mean, n_samples`` for every class with at least one sample (empty without
        labels).
    per_superclass:
        ``tau, superclass, mean, n_samples`` (empty without a superclass mapping).
    summary:
        One row per tau: ``tau, mean, std, mean_norm, frac_one_hot, frac_two_hot, frac_uniform,
        eff_vertices, n_samples, L, V``.
    meta:
        The parameters of the analysis (``L``, ``V``, ``n_samples``, ``taus``, ``bins``,
        ``quantile_bins``, ``quantiles``, ``eps``, ``quantile_resolution``).
    """

    per_simplex: pd.DataFrame
    histogram: pd.DataFrame
    per_class: pd.DataFrame
    per_superclass: pd.DataFrame
    summary: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dir(self, path: str | os.PathLike[str], csv: bool = False) -> Path:
        """Write every table as ``<name>.parquet`` (and ``<name>.csv``) plus ``meta.json``.

        Each file is written atomically: a killed process leaves either the old or the new file.

        Parameters
        ----------
        path:
            Directory, created if needed.
        csv:
            Also write CSV copies of the tables.

        Returns
        -------
        Path
            The directory.
        """
        directory = ensure_writable_dir(path)
        for name in _TABLES:
            frame: pd.DataFrame = getattr(self, name)
            with atomic_path(directory / f"{name}.parquet", suffix=".parquet") as tmp:
                frame.to_parquet(tmp, index=False)
            if csv:
                with atomic_path(directory / f"{name}.csv", suffix=".csv") as tmp:
                    frame.to_csv(tmp, index=False)
        write_json(directory / "meta.json", self.meta)
        return directory

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str]) -> EntropyReport:
        """Read a report written by :meth:`to_dir`.

        Raises
        ------
        SemprobeError
            If a file is missing or unreadable, naming it.
        """
        directory = Path(path)
        tables: dict[str, pd.DataFrame] = {}
        for name in _TABLES:
            file = directory / f"{name}.parquet"
            try:
                tables[name] = pd.read_parquet(file)
            except (OSError, ValueError) as exc:
                raise SemprobeError(f"cannot read entropy table {file}: {exc}") from None
        meta_file = directory / "meta.json"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SemprobeError(f"cannot read {meta_file}: {exc}") from None
        return cls(meta=meta, **tables)


# ---------------------------------------------------------------------------------------------
# Streaming accumulators
# ---------------------------------------------------------------------------------------------


class _Moments:
    """Running sums over samples for all taus at once (float64 where they are sums of entropies).

    Mean and M2 (sum of squared deviations) are kept per simplex and merged with Chan et al.'s
    pairwise formula, which stays exact where sum-of-squares formulas cancel.
    """

    def __init__(self, spec: _Spec) -> None:
        f64 = torch.float64
        t, simplices, dev = spec.t_count, spec.num_simplices, spec.device
        self.spec = spec
        self.n = 0
        self.mean = torch.zeros((t, simplices), dtype=f64, device=dev)
        self.m2 = torch.zeros((t, simplices), dtype=f64, device=dev)
        self.eff = torch.zeros((t, simplices), dtype=f64, device=dev)
        # Pairs near one-hot, two-hot and uniform, per tau.
        self.near = torch.zeros((3, t), dtype=torch.int64, device=dev)
        self.class_sum = torch.zeros((t, spec.num_classes), dtype=f64, device=dev)
        self.hist = (
            None if spec.derive_hist else torch.zeros((t, spec.bins), dtype=torch.int64, device=dev)
        )

    def _merge_moments(self, n_b: int, mean_b: Tensor, m2_b: Tensor) -> None:
        if self.n == 0:
            self.mean.copy_(mean_b)
            self.m2.copy_(m2_b)
        else:
            total = self.n + n_b
            delta = mean_b - self.mean
            self.mean.add_(delta, alpha=n_b / total)
            self.m2.add_(m2_b).add_(delta.square_(), alpha=self.n * n_b / total)
        self.n += n_b

    def merge(self, other: _Moments) -> None:
        """Add the samples summarised by ``other``."""
        if other.n == 0:
            return
        self._merge_moments(other.n, other.mean, other.m2)
        self.eff.add_(other.eff)
        self.near.add_(other.near)
        self.class_sum.add_(other.class_sum)
        if self.hist is not None and other.hist is not None:
            self.hist.add_(other.hist)

    def add_block(self, ent: Tensor, labels: Tensor | None, tmp: Tensor, codes: Tensor) -> None:
        """Add a block of entropies and write its fine-histogram indices.

        Parameters
        ----------
        ent:
            ``(T, m, L)`` float32 entropies of m samples.
        labels:
            ``(m,)`` int64 class indices, or None.
        tmp:
            ``(T, m, L)`` float32 scratch.
        codes:
            ``(T, m, L)`` int32 output: ``bin * L + simplex`` of every entropy in the per-simplex
            histogram of ``quantile_bins`` bins (layout ``(quantile_bins, L)``).
        """
        spec = self.spec
        f64 = torch.float64
        m = ent.shape[1]
        # Block sums over at most a few hundred rows are taken in float32 (exact enough, and
        # several times faster than float64 reductions) and accumulated in float64.
        mean_b = ent.sum(dim=1).div_(m)
        # Two-pass M2 of the block around its own mean, then a pairwise merge.
        torch.sub(ent, mean_b.unsqueeze(1), out=tmp)
        m2_b = tmp.square_().sum(dim=1)
        self._merge_moments(m, mean_b.to(f64), m2_b.to(f64))

        torch.mul(ent, LOG2E, out=tmp)
        self.eff.add_(tmp.exp2_().sum(dim=1).to(f64))
        # Counts as sums of sign(relu(.)) in {0, 1}: exact in float32 (a block has < 2**24
        # entries per tau) and much cheaper than boolean masks.
        torch.sub(spec.eps, ent, out=tmp)
        self.near[0].add_(tmp.clamp_(min=0.0).sign_().sum(dim=(1, 2)).to(torch.int64))
        torch.sub(ent, LN2, out=tmp).abs_()
        torch.sub(spec.eps, tmp, out=tmp)
        self.near[1].add_(tmp.clamp_(min=0.0).sign_().sum(dim=(1, 2)).to(torch.int64))
        torch.sub(ent, spec.log_v - spec.eps, out=tmp)
        self.near[2].add_(tmp.clamp_(min=0.0).sign_().sum(dim=(1, 2)).to(torch.int64))
        if labels is not None:
            self.class_sum.index_add_(1, labels, ent.sum(dim=2).to(f64))

        # float -> int conversion truncates, which is floor for entropies >= 0.
        codes.copy_(torch.mul(ent, spec.quantile_bins / spec.log_v, out=tmp))
        codes.clamp_(0, spec.quantile_bins - 1).mul_(spec.num_simplices).add_(spec.simplex_ids)
        if self.hist is not None:
            coarse = torch.mul(ent, spec.bins / spec.log_v, out=tmp).long()
            coarse.clamp_(0, spec.bins - 1).add_(spec.tau_offsets * spec.bins)
            counts = torch.bincount(coarse.view(-1), minlength=spec.t_count * spec.bins)
            self.hist.add_(counts.view(spec.t_count, spec.bins))


@dataclass(frozen=True)
class _Spec:
    """Fixed parameters shared by the accumulators."""

    t_count: int
    num_simplices: int
    vocab: int
    num_classes: int
    bins: int
    quantile_bins: int
    eps: float
    device: torch.device
    log_v: float
    derive_hist: bool
    simplex_ids: Tensor
    tau_offsets: Tensor

    @classmethod
    def make(
        cls,
        t_count: int,
        num_simplices: int,
        vocab: int,
        num_classes: int,
        bins: int,
        quantile_bins: int,
        eps: float,
        device: torch.device,
    ) -> _Spec:
        index_dtype = torch.int32 if num_simplices * quantile_bins < 2**31 else torch.int64
        return cls(
            t_count=t_count,
            num_simplices=num_simplices,
            vocab=vocab,
            num_classes=num_classes,
            bins=bins,
            quantile_bins=quantile_bins,
            eps=eps,
            device=device,
            log_v=math.log(vocab),
            # The overall histogram is the per-simplex ones merged when its bins nest in theirs.
            derive_hist=quantile_bins % bins == 0,
            simplex_ids=torch.arange(num_simplices, dtype=index_dtype, device=device),
            tau_offsets=torch.arange(t_count, device=device).view(-1, 1, 1),
        )

    @property
    def index_dtype(self) -> torch.dtype:
        return self.simplex_ids.dtype


def _fine_quantiles(fine: np.ndarray, n: int, probs: Sequence[float], width: float) -> np.ndarray:
    """Per-simplex quantile estimates ``(L, len(probs))`` from ``(L, bins)`` histogram counts."""
    counts = fine.astype(np.float64)
    cum = np.cumsum(counts, axis=1)
    out = np.empty((counts.shape[0], len(probs)))
    rows = np.arange(counts.shape[0])
    last = counts.shape[1] - 1
    for j, p in enumerate(probs):
        target = p * n
        # The first bin whose cumulative count reaches the target rank holds the exact value.
        k = np.minimum((cum < target).sum(axis=1), last)
        before = np.where(k > 0, cum[rows, np.maximum(k - 1, 0)], 0.0)
        inside = np.maximum(counts[rows, k], 1.0)
        out[:, j] = (k + np.clip((target - before) / inside, 0.0, 1.0)) * width
    return out


# ---------------------------------------------------------------------------------------------
# Reading memory-mapped input without keeping it resident
# ---------------------------------------------------------------------------------------------


class RowPager:
    """Prefetch and release row ranges of a read-only or shared ``np.memmap``.

    Pages of a file mapping stay in the process's resident set once touched; telling the kernel
    they are no longer needed (they stay in the page cache) keeps the resident set at about one
    chunk instead of the whole file. A no-op for in-memory arrays and private (copy-on-write)
    mappings, whose pages cannot be dropped without losing data.
    """

    def __init__(self, array: np.ndarray) -> None:
        self._mm: mmap.mmap | None = None
        self._base = 0
        self._page = mmap.PAGESIZE
        mm = getattr(array, "_mmap", None)
        mode = getattr(array, "mode", None)
        if (
            isinstance(array, np.memmap)
            and isinstance(mm, mmap.mmap)
            and mode in ("r", "r+", "w+")
            and hasattr(mm, "madvise")
            and array.flags.c_contiguous
        ):
            try:
                view = np.frombuffer(mm, dtype=np.uint8, count=1)
            except (TypeError, ValueError):
                return
            self._base = int(view.ctypes.data)
            del view
            self._mm = mm
            self._start = int(array.ctypes.data)
            self._row_bytes = int(array.strides[0])
            self._size = len(mm)

    @property
    def active(self) -> bool:
        """Whether prefetch and release do anything for this array."""
        return self._mm is not None

    def _advise(self, option: int, first_row: int, stop_row: int, inward: bool) -> None:
        if self._mm is None or stop_row <= first_row:
            return
        begin = self._start - self._base + first_row * self._row_bytes
        end = self._start - self._base + stop_row * self._row_bytes
        page = self._page
        if inward:
            # Only whole pages of this range, so neighbouring rows are never affected.
            begin = -(-begin // page) * page
            end = end // page * page
        else:
            begin = begin // page * page
            end = min(-(-end // page) * page, self._size)
        if end > begin:
            try:
                self._mm.madvise(option, begin, end - begin)
            except (OSError, ValueError):
                self._mm = None

    def prefetch(self, first_row: int, stop_row: int) -> None:
        """Ask the kernel to start reading these rows in the background."""
        option = getattr(mmap, "MADV_WILLNEED", None)
        if option is not None:
            self._advise(option, first_row, stop_row, inward=False)

    def release(self, first_row: int, stop_row: int) -> None:
        """Drop these rows from the resident set (they remain in the page cache)."""
        option = getattr(mmap, "MADV_DONTNEED", None)
        if option is not None:
            self._advise(option, first_row, stop_row, inward=True)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _as_array(logits: Any) -> np.ndarray:
    if isinstance(logits, torch.Tensor):
        logits = logits.detach().cpu().numpy()
    elif not isinstance(logits, np.ndarray):
        try:
            logits = np.asarray(logits)
        except (TypeError, ValueError):
            raise SemprobeError(f"logits must be an array, got {type(logits).__name__}") from None
    if logits.ndim != 2:
        raise SemprobeError(f"logits must have shape (N, L*V), got shape {logits.shape}")
    if logits.dtype.kind != "f" or logits.dtype.itemsize not in (2, 4, 8):
        raise SemprobeError(f"logits must be float16 or float32, got dtype {logits.dtype}")
    if logits.shape[0] == 0:
        raise SemprobeError("logits has no rows (N = 0)")
    return logits


def _check_taus(taus: Any) -> list[float]:
    if isinstance(taus, (str, bytes)) or not isinstance(taus, Iterable):
        taus = [taus]
    values = list(taus)
    if not values:
        raise SemprobeError("taus is empty: give at least one temperature")
    checked = [check_tau(t) for t in values]
    seen: set[float] = set()
    for raw, value in zip(values, checked, strict=True):
        if value in seen:
            raise SemprobeError(f"tau {raw!r} is given twice")
        seen.add(value)
    return checked


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SemprobeError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_labels(labels: Any, n: int, class_names: Sequence[str] | None) -> tuple[np.ndarray, int]:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise SemprobeError(f"labels must have shape ({n},) to match the logits, got {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise SemprobeError(f"labels must be integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    low, high = int(arr.min()), int(arr.max())
    if low < 0:
        raise SemprobeError(f"labels must be >= 0, got {low}")
    if class_names is not None:
        if high >= len(class_names):
            raise SemprobeError(
                f"label {high} has no name: class_names has {len(class_names)} entries"
            )
        return arr, len(class_names)
    return arr, high + 1


def _superclass_table(
    superclass_of: Sequence[str] | Mapping[Any, str],
    present: np.ndarray,
    class_names: Sequence[str] | None,
) -> list[str]:
    """The superclass of every present class index."""
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


def _quantile_name(p: float) -> str:
    pct = p * 100.0
    if abs(pct - round(pct)) < 1e-9:
        return f"q{round(pct):02d}"
    return "q" + f"{pct:g}".replace(".", "_")


# ---------------------------------------------------------------------------------------------
# The public entry point
# ---------------------------------------------------------------------------------------------


def entropy_report(
    logits: np.ndarray,
    num_simplices: int,
    vocab: int,
    taus: Sequence[float] | float,
    labels: Sequence[int] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    superclass_of: Sequence[str] | Mapping[Any, str] | None = None,
    bins: int = 64,
    eps: float = 0.05,
    chunk_rows: int | None = None,
    progress: bool = False,
    *,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    quantile_bins: int = 256,
    num_threads: int | None = None,
    device: str | torch.device | None = None,
) -> EntropyReport:
    """Entropy statistics of SEM outputs at several temperatures, in one streamed pass.

    Parameters
    ----------
    logits:
        ``(N, L*V)`` pre-softmax SEM logits: ``np.ndarray`` or ``np.memmap`` (e.g.
        ``np.load(path, mmap_mode="r")``), float16 or float32, finite. Read once, ``chunk_rows``
        rows at a time; pages of a memory map are released from the resident set once used.
    num_simplices, vocab:
        L and V (V >= 2).
    taus:
        One temperature or a sequence of distinct temperatures, each > 0.
    labels:
        Optional ``(N,)`` class indices ``0 .. C-1``, for the per-class table.
    class_names:
        Optional names of the classes (index = label); the per-class table then shows names.
    superclass_of:
        Optional superclass of every class: a sequence indexed by label, or a mapping from class
        name or label to superclass. Needs ``labels``.
    bins:
        Number of equal bins of the overall histogram on ``[0, ln V]``. When it divides
        ``quantile_bins`` the histogram is merged from the per-simplex ones (no extra pass).
    eps:
        Tolerance (nats) of the near one-hot / two-hot / uniform fractions.
    chunk_rows:
        Rows read at once; default: about 32M logits per chunk, fewer when there are many taus.
        Memory is proportional to it.
    progress:
        Show a tqdm progress bar (rows).
    quantiles:
        Probabilities in (0, 1) of the per-simplex quantiles; column ``q05`` is 0.05.
    quantile_bins:
        Resolution of the per-simplex histograms: quantiles are within ``ln V / quantile_bins``
        of the exact values. Takes ``len(taus) * L * quantile_bins * 8`` bytes.
    num_threads:
        CPU worker threads; default ``torch.get_num_threads()``.
    device:
        Torch device for the computation, default CPU; e.g. ``"cuda"``.

    Returns
    -------
    EntropyReport
        The tables described in :class:`EntropyReport`.

    Raises
    ------
    SemprobeError
        For a bad tau, shape, label, parameter or non-finite logits, naming the value.
    """
    array = _as_array(logits)
    num_simplices = _positive_int("num_simplices", num_simplices)
    vocab = _positive_int("vocab", vocab)
    n_rows, width = array.shape
    check_shape(width, num_simplices, vocab)
    if vocab < 2:
        raise SemprobeError(f"vocab must be >= 2 for an entropy analysis, got {vocab}")
    tau_list = _check_taus(taus)
    bins = _positive_int("bins", bins)
    quantile_bins = _positive_int("quantile_bins", quantile_bins)
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise SemprobeError(f"eps must be a positive number, got {eps!r}") from None
    if not math.isfinite(eps) or eps <= 0:
        raise SemprobeError(f"eps must be a positive number, got {eps!r}")
    probs = [float(p) for p in quantiles]
    for p in probs:
        if not 0.0 < p < 1.0:
            raise SemprobeError(f"quantiles must lie in (0, 1), got {p!r}")
    if len({_quantile_name(p) for p in probs}) != len(probs):
        raise SemprobeError(f"quantiles must be distinct, got {list(quantiles)!r}")
    if class_names is not None and labels is None:
        raise SemprobeError("class_names needs labels")
    if superclass_of is not None and labels is None:
        raise SemprobeError("superclass_of needs labels")
    label_arr: np.ndarray | None = None
    num_classes = 0
    if labels is not None:
        label_arr, num_classes = _check_labels(labels, n_rows, class_names)
    try:
        dev = torch.device(device) if device is not None else torch.device("cpu")
    except (RuntimeError, TypeError) as exc:
        raise SemprobeError(f"bad device {device!r}: {exc}") from None
    workers = torch.get_num_threads() if num_threads is None else num_threads
    workers = _positive_int("num_threads", workers)
    t_count = len(tau_list)
    if chunk_rows is None:
        chunk_rows = default_chunk_rows(num_simplices, vocab, t_count)
    chunk_rows = min(_positive_int("chunk_rows", chunk_rows), n_rows)

    spec = _Spec.make(t_count, num_simplices, vocab, num_classes, bins, quantile_bins, eps, dev)
    labels_t = torch.from_numpy(np.array(label_arr)).to(dev) if label_arr is not None else None
    total = _Moments(spec)
    runner = _Runner(array, spec, tau_list, labels_t, chunk_rows, workers)

    from tqdm.auto import tqdm

    bar = tqdm(total=n_rows, unit="rows", desc="entropy", disable=not progress)
    try:
        for start in range(0, n_rows, chunk_rows):
            stop = min(n_rows, start + chunk_rows)
            for part in runner.chunk(start, stop):
                total.merge(part)
            if not bool(torch.isfinite(total.mean).all()):
                bad = _first_bad_row(array, start, stop)
                raise SemprobeError(f"logits row {bad} contains a non-finite value (nan or inf)")
            bar.update(stop - start)
        fine = runner.finish()
    finally:
        bar.close()
        runner.close()

    class_counts = (
        np.bincount(label_arr, minlength=num_classes) if label_arr is not None else np.zeros(0)
    )
    return _build_report(
        total,
        fine.reshape(t_count, quantile_bins, num_simplices),
        tau_list,
        probs,
        class_counts,
        class_names,
        superclass_of,
    )


def default_chunk_rows(num_simplices: int, vocab: int, num_taus: int) -> int:
    """Rows read at once by default: about 32M logits, fewer when many taus need buffers.

    Parameters
    ----------
    num_simplices, vocab:
        L and V.
    num_taus:
        Number of temperatures analysed together.

    Returns
    -------
    int
        At least 1.
    """
    by_input = _CHUNK_ELEMS // (num_simplices * vocab)
    by_codes = _CODE_BUF_ELEMS // (num_taus * num_simplices)
    return max(1, min(by_input, by_codes))


def _first_bad_row(array: np.ndarray, start: int, stop: int) -> int:
    for row in range(start, stop):
        if not np.all(np.isfinite(array[row])):
            return row
    return start


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    """The torch dtype of a numpy float dtype."""
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


@dataclass
class _Scratch:
    """Per-thread working buffers of the runner."""

    raw: np.ndarray
    raw_t: Tensor
    y: Tensor
    scaled: Tensor
    expd: Tensor
    ent: Tensor
    tmp: Tensor


class _Runner:
    """Computes the entropies of row ranges in parallel and accumulates their statistics.

    Work is split in three levels: chunks of rows read at once (the caller's loop), tasks (a
    slice of a chunk for one worker thread), and kernel blocks sized to stay in the CPU cache.
    """

    def __init__(
        self,
        array: np.ndarray,
        spec: _Spec,
        taus: list[float],
        labels: Tensor | None,
        chunk_rows: int,
        workers: int,
    ) -> None:
        self.array = array
        self.spec = spec
        self.labels = labels
        self.cpu = spec.device.type == "cpu"
        self.pager = RowPager(array)
        width = spec.num_simplices * spec.vocab
        t_count = spec.t_count
        work = _CPU_WORK_ELEMS if self.cpu else _GPU_WORK_ELEMS
        # Rows per kernel call, and taus per kernel call, so that a (taus, V, rows*L) working
        # buffer stays within the budget; and rows per statistics block.
        self.block_rows = max(1, min(chunk_rows, work // (width * t_count)))
        self.tau_group = max(1, min(t_count, work // (self.block_rows * width)))
        stats_rows = max(
            1, (_CPU_STATS_ELEMS if self.cpu else _GPU_STATS_ELEMS) // spec.num_simplices
        )
        # With many workers, smaller blocks keep them all busy on one chunk.
        stats_rows = min(stats_rows, -(-chunk_rows // (2 * workers)) if self.cpu else chunk_rows)
        self.stats_rows = max(1, stats_rows // self.block_rows) * self.block_rows
        self.groups = [
            (t0, min(t_count, t0 + self.tau_group)) for t0 in range(0, t_count, self.tau_group)
        ]
        self.coefs = [_coefficients(taus[t0:t1], spec.device) for t0, t1 in self.groups]
        self.coef_max = [float(c.max()) for c in self.coefs]
        # float16 logits differ by at most 2 * 65504: scaled values can only overflow at
        # tau < 1e-33. Other inputs are checked block by block.
        self.guard = not (
            array.dtype == np.float16 and max(self.coef_max) * 2 * 65504.0 < _FLOAT32_BIG
        )
        # Per-simplex histogram indices of a chunk, counted while the next chunk is computed;
        # two buffers alternate.
        self.codes = [
            torch.empty(
                (t_count, chunk_rows, spec.num_simplices),
                dtype=spec.index_dtype,
                device=spec.device,
            )
            for _ in range(2)
        ]
        self.fine = torch.zeros(
            (t_count, spec.quantile_bins * spec.num_simplices),
            dtype=torch.int64,
            device=spec.device,
        )
        self.counting: list[Future[None]] = []
        self.chunks_done = 0
        self.local = threading.local()
        self.pool: ThreadPoolExecutor | None = None
        self.saved_threads = torch.get_num_threads()
        self.workers = workers if self.cpu else 1
        if self.cpu:
            # Each worker runs single-threaded torch ops: many cache-sized ops in parallel beat
            # intra-op parallelism of each, which also stalls badly when cores are shared.
            self.pool = ThreadPoolExecutor(
                workers, initializer=torch.set_num_threads, initargs=(1,)
            )

    def close(self) -> None:
        """Stop the worker threads (waiting for running work) and restore torch's setting."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
            # The workers' setting also applies to threads started later; restore it.
            torch.set_num_threads(self.saved_threads)

    def map(self, fn: Callable[[int], _T], items: Iterable[int]) -> list[_T]:
        """``[fn(i) for i in items]``, in parallel on the CPU."""
        if self.pool is None:
            return [fn(item) for item in items]
        return [future.result() for future in [self.pool.submit(fn, i) for i in items]]

    def _scratch(self) -> _Scratch:
        scratch: _Scratch | None = getattr(self.local, "scratch", None)
        if scratch is None:
            spec, dev, f32 = self.spec, self.spec.device, torch.float32
            n = self.block_rows * spec.num_simplices
            group = (self.tau_group, spec.vocab, n)
            block = (spec.t_count, self.stats_rows, spec.num_simplices)
            width = spec.num_simplices * spec.vocab
            # Pinned host memory makes the copies to a GPU faster.
            raw_t = torch.empty(
                (self.block_rows, width),
                dtype=_torch_dtype(self.array.dtype.newbyteorder("=")),
                pin_memory=not self.cpu,
            )
            scratch = _Scratch(
                raw=raw_t.numpy(),
                raw_t=raw_t,
                y=torch.empty((spec.vocab, n), dtype=f32, device=dev),
                scaled=torch.empty(group, dtype=f32, device=dev),
                expd=torch.empty(group, dtype=f32, device=dev),
                ent=torch.empty(block, dtype=f32, device=dev),
                tmp=torch.empty(block, dtype=f32, device=dev),
            )
            self.local.scratch = scratch
        return scratch

    def _task(self, start: int, stop: int, chunk_start: int, codes_out: Tensor) -> _Moments:
        """Statistics of rows ``[start, stop)``; their histogram indices into ``codes_out``."""
        spec = self.spec
        sc = self._scratch()
        moments = _Moments(spec)
        for b0 in range(start, stop, self.stats_rows):
            b1 = min(stop, b0 + self.stats_rows)
            for a0 in range(b0, b1, self.block_rows):
                a1 = min(b1, a0 + self.block_rows)
                n = (a1 - a0) * spec.num_simplices
                full = n == sc.y.shape[1]
                # This copy is the actual read of a memory-mapped file.
                np.copyto(sc.raw[: a1 - a0], self.array[a0:a1])
                src = sc.raw_t if full else sc.raw_t[: a1 - a0]
                if not self.cpu:
                    src = src.to(spec.device)
                y = sc.y if full else sc.y[:, :n]
                lowest = _shift(src.view(n, spec.vocab), y, self.guard)
                for (t0, t1), coef, top in zip(self.groups, self.coefs, self.coef_max, strict=True):
                    out = sc.ent[t0:t1, a0 - b0 : a1 - b0].view(t1 - t0, n)
                    scaled, expd = sc.scaled[: t1 - t0], sc.expd[: t1 - t0]
                    if not full:
                        scaled, expd = scaled[:, :, :n], expd[:, :, :n]
                    _entropy_shifted(y, coef, out, scaled, expd, lowest * top < -_FLOAT32_BIG)
            m = b1 - b0
            labels = self.labels[b0:b1] if self.labels is not None else None
            codes = codes_out[:, b0 - chunk_start : b1 - chunk_start]
            moments.add_block(sc.ent[:, :m], labels, sc.tmp[:, :m], codes)
        return moments

    def chunk(self, start: int, stop: int) -> list[_Moments]:
        """Statistics of rows ``[start, stop)``, one part per task, in row order."""
        rows = stop - start
        codes = self.codes[self.chunks_done % 2]
        self.chunks_done += 1
        self.pager.prefetch(stop, stop + rows)
        # A few tasks per worker balance the load when other processes share the cores.
        step = -(-rows // (4 * self.workers))
        step = -(-step // self.block_rows) * self.block_rows
        parts = self.map(
            lambda a: self._task(a, min(stop, a + step), start, codes), range(start, stop, step)
        )
        self.pager.release(start, stop)
        # The previous chunk's counts are done before this chunk's start (one writer per tau).
        self._wait_counts()
        chunk_codes = codes[:, :rows]

        def count(t: int) -> None:
            flat = chunk_codes[t].reshape(-1)
            self.fine[t].add_(torch.bincount(flat, minlength=self.fine.shape[1]))

        if self.pool is None:
            for t in range(self.spec.t_count):
                count(t)
        else:
            self.counting = [self.pool.submit(count, t) for t in range(self.spec.t_count)]
        return parts

    def _wait_counts(self) -> None:
        for future in self.counting:
            future.result()
        self.counting = []

    def finish(self) -> np.ndarray:
        """The per-simplex histograms, ``(T, quantile_bins * L)`` int64 (index ``bin * L + l``)."""
        self._wait_counts()
        return self.fine.cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def _build_report(
    total: _Moments,
    fine: np.ndarray,
    taus: list[float],
    probs: list[float],
    class_counts: np.ndarray,
    class_names: Sequence[str] | None,
    superclass_of: Sequence[str] | Mapping[Any, str] | None,
) -> EntropyReport:
    """Turn the accumulated sums and the ``(T, quantile_bins, L)`` histograms into tables."""
    spec = total.spec
    simplices, vocab, log_v, n = spec.num_simplices, spec.vocab, spec.log_v, total.n
    pairs = n * simplices
    simplex_ids = np.arange(simplices)
    edges = np.linspace(0.0, log_v, spec.bins + 1)
    present = np.flatnonzero(class_counts > 0)
    class_keys: list[Any] = (
        [class_names[c] for c in present.tolist()] if class_names is not None else present.tolist()
    )
    supers = (
        _superclass_table(superclass_of, present, class_names)
        if superclass_of is not None
        else None
    )
    means = total.mean.cpu().numpy()
    m2s = np.maximum(total.m2.cpu().numpy(), 0.0)
    effs = total.eff.cpu().numpy()
    near = total.near.cpu().numpy()
    class_sums = total.class_sum.cpu().numpy()
    if total.hist is not None:
        hists = total.hist.cpu().numpy()
    else:
        merged = fine.sum(axis=2)
        hists = merged.reshape(len(taus), spec.bins, -1).sum(axis=2)

    per_simplex, histogram, per_class, per_superclass, summary = [], [], [], [], []
    for t, tau in enumerate(taus):
        mean, std = means[t], np.sqrt(m2s[t] / n)
        frame = pd.DataFrame(
            {
                "tau": np.full(simplices, tau),
                "simplex": simplex_ids,
                "mean": mean,
                "std": std,
                "mean_norm": mean / log_v,
                "std_norm": std / log_v,
            }
        )
        qs = _fine_quantiles(np.ascontiguousarray(fine[t].T), n, probs, log_v / spec.quantile_bins)
        for j, p in enumerate(probs):
            frame[_quantile_name(p)] = qs[:, j]
        frame["eff_vertices"] = effs[t] / n
        per_simplex.append(frame)

        histogram.append(
            pd.DataFrame(
                {
                    "tau": np.full(spec.bins, tau),
                    "bin_left": edges[:-1],
                    "bin_right": edges[1:],
                    "count": hists[t].astype(np.int64),
                }
            )
        )

        grand = float(mean.mean())
        # M2 over all pairs = within-simplex M2 + the spread of the simplex means.
        m2_total = float(m2s[t].sum()) + n * float(((mean - grand) ** 2).sum())
        summary.append(
            {
                "tau": tau,
                "mean": grand,
                "std": math.sqrt(m2_total / pairs),
                "mean_norm": grand / log_v,
                "frac_one_hot": float(near[0, t]) / pairs,
                "frac_two_hot": float(near[1, t]) / pairs,
                "frac_uniform": float(near[2, t]) / pairs,
                "eff_vertices": float(effs[t].sum()) / pairs,
                "n_samples": n,
                "L": simplices,
                "V": vocab,
            }
        )

        if present.size:
            sums = class_sums[t, present]
            counts = class_counts[present].astype(np.int64)
            per_class.append(
                pd.DataFrame(
                    {
                        "tau": np.full(present.size, tau),
                        "class": class_keys,
                        "mean": sums / (counts * simplices),
                        "n_samples": counts,
                    }
                )
            )
            if supers is not None:
                grouped = (
                    pd.DataFrame({"superclass": supers, "sum": sums, "n_samples": counts})
                    .groupby("superclass", sort=True)
                    .sum()
                    .reset_index()
                )
                sizes = grouped["n_samples"].to_numpy().astype(np.int64)
                per_superclass.append(
                    pd.DataFrame(
                        {
                            "tau": np.full(len(grouped), tau),
                            "superclass": grouped["superclass"].to_numpy(),
                            "mean": grouped["sum"].to_numpy() / (sizes * simplices),
                            "n_samples": sizes,
                        }
                    )
                )

    meta = {
        "L": simplices,
        "V": vocab,
        "n_samples": n,
        "taus": taus,
        "bins": spec.bins,
        "quantile_bins": spec.quantile_bins,
        "quantiles": probs,
        "quantile_resolution": log_v / spec.quantile_bins,
        "eps": spec.eps,
    }
    return EntropyReport(
        per_simplex=pd.concat(per_simplex, ignore_index=True),
        histogram=pd.concat(histogram, ignore_index=True),
        per_class=_concat(per_class, "class"),
        per_superclass=_concat(per_superclass, "superclass"),
        summary=pd.DataFrame(summary),
        meta=meta,
    )


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
