"""The chunk runner: entropies of row ranges on worker threads, and the one streamed pass.

Work is split in three levels: chunks of rows read at once, tasks (a slice of a chunk for one
worker thread) and kernel blocks sized to stay in the CPU cache. On a CPU each worker runs
single-threaded torch ops; the sizes are discussed in docs/entropy.md.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from semprobe.entropy.kernel import FLOAT32_BIG, coefficients, entropy_shifted, sentinel, shift
from semprobe.entropy.moments import Moments, Spec
from semprobe.entropy.paging import RowPager
from semprobe.errors import SemprobeError

# Logit elements per chunk read when ``chunk_rows`` is not given (64 MiB of float16), and the cap
# on each of the two (taus x rows x simplices) int32 histogram-index buffers of a chunk.
_CHUNK_ELEMS = 1 << 25
_CODE_BUF_ELEMS = 1 << 24
# Elements of a (taus, V, rows*L) kernel buffer and of a (rows, L) statistics block per tau: on
# a CPU they stay in the last-level cache; a GPU takes larger blocks. Float32 counts in a
# statistics block are exact below 2**24 entries.
_CPU_WORK_ELEMS = 1 << 21
_CPU_STATS_ELEMS = 1 << 20
_GPU_WORK_ELEMS = 1 << 26
_GPU_STATS_ELEMS = 1 << 23

# Rows counted into an int16 histogram before it is added to the total (see Runner._count_tau).
_INT16_ROWS = 32767

_T = TypeVar("_T")


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


def stream(
    array: np.ndarray,
    spec: Spec,
    taus: list[float],
    labels: np.ndarray | None,
    chunk_rows: int,
    workers: int,
    progress: bool,
) -> tuple[Moments, np.ndarray, np.ndarray]:
    """Read ``array`` once, ``chunk_rows`` rows at a time, and accumulate its statistics.

    Returns
    -------
    tuple
        The merged :class:`Moments`, the per-simplex histograms ``(T, fine_bins, L)`` and the
        per-class ones ``(T, fine_bins, C)`` (both int64; the second is empty without labels).

    Raises
    ------
    SemprobeError
        Naming the first row with a nan or inf logit.
    """
    labels_t = torch.from_numpy(np.array(labels)).to(spec.device) if labels is not None else None
    total = Moments(spec)
    runner = Runner(array, spec, taus, labels_t, chunk_rows, workers)

    from tqdm.auto import tqdm

    n_rows = array.shape[0]
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
        fine, by_class = runner.finish()
    finally:
        bar.close()
        runner.close()
    bins = spec.fine_bins
    return (
        total,
        fine.reshape(spec.t_count, bins, spec.num_simplices),
        by_class.reshape(spec.t_count, bins, spec.num_classes),
    )


def _first_bad_row(array: np.ndarray, start: int, stop: int) -> int:
    for row in range(start, stop):
        if not np.all(np.isfinite(array[row])):
            return row
    return start


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    """The torch dtype of a numpy float dtype."""
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


def _block_sizes(spec: Spec, chunk_rows: int, workers: int, cpu: bool) -> tuple[int, int, int]:
    """Rows and taus per kernel call, and rows per statistics block (a multiple of the first).

    A ``(taus, V, rows*L)`` kernel buffer stays within the work budget of the device.
    """
    width = spec.num_simplices * spec.vocab
    work = _CPU_WORK_ELEMS if cpu else _GPU_WORK_ELEMS
    block_rows = max(1, min(chunk_rows, work // (width * spec.t_count)))
    tau_group = max(1, min(spec.t_count, work // (block_rows * width)))
    stats_rows = max(1, (_CPU_STATS_ELEMS if cpu else _GPU_STATS_ELEMS) // spec.num_simplices)
    # With many workers, smaller blocks keep them all busy on one chunk.
    stats_rows = min(stats_rows, -(-chunk_rows // (2 * workers)) if cpu else chunk_rows)
    return block_rows, tau_group, max(1, stats_rows // block_rows) * block_rows


def _needs_guard(dtype: np.dtype, coef_max: float) -> bool:
    """Whether shifted logits times the coefficients can overflow float32."""
    # float16 logits differ by at most 2 * 65504: scaled values can only overflow at
    # tau < 1e-33. Other inputs are checked block by block.
    return not (dtype == np.float16 and coef_max * 2 * 65504.0 < FLOAT32_BIG)


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
    icodes: Tensor
    class_hist: Tensor | None


class Runner:
    """Computes the entropies of row ranges in parallel and accumulates their statistics.

    Parameters
    ----------
    array:
        ``(N, L*V)`` logits.
    spec:
        The analysis.
    taus:
        The temperatures, ``spec.t_count`` of them.
    labels:
        ``(N,)`` int64 class indices on ``spec.device``, or None.
    chunk_rows:
        The most rows passed to one :meth:`chunk` call.
    workers:
        CPU worker threads (one on a GPU).
    """

    def __init__(
        self,
        array: np.ndarray,
        spec: Spec,
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
        sizes = _block_sizes(spec, chunk_rows, workers, self.cpu)
        self.block_rows, self.tau_group, self.stats_rows = sizes
        t_count = spec.t_count
        self.groups = [
            (t0, min(t_count, t0 + self.tau_group)) for t0 in range(0, t_count, self.tau_group)
        ]
        self.coefs = [coefficients(taus[t0:t1], spec.device) for t0, t1 in self.groups]
        self.coef_max = [float(c.max()) for c in self.coefs]
        self.mark = sentinel(coefficients(taus, spec.device))
        self.guard = _needs_guard(array.dtype, max(self.coef_max))
        # Per-simplex histogram indices of a chunk, counted while the next chunk is computed;
        # two buffers alternate.
        codes_shape = (t_count, chunk_rows, spec.num_simplices)
        self.codes = [
            torch.empty(codes_shape, dtype=spec.index_dtype, device=spec.device) for _ in range(2)
        ]
        fine_shape = (t_count, spec.fine_bins * spec.num_simplices)
        # int32 counts (a simplex sees fewer than 2**31 samples): half the cache of int64.
        self.fine = torch.zeros(fine_shape, dtype=torch.int32, device=spec.device)
        self.one = torch.ones(1, dtype=torch.int32, device=spec.device)
        self.one16 = torch.ones(1, dtype=torch.int16)
        self.counting: list[Future[None]] = []
        self.chunks_done = 0
        self.local = threading.local()
        self.scratches: list[_Scratch] = []
        self.scratch_lock = threading.Lock()
        self.saved_threads = torch.get_num_threads()
        self.workers = workers if self.cpu else 1
        # Each worker runs single-threaded torch ops: many cache-sized ops in parallel beat
        # intra-op parallelism of each, which also stalls badly when cores are shared.
        self.pool: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,))
            if self.cpu
            else None
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
            scratch = self._new_scratch()
            self.local.scratch = scratch
            with self.scratch_lock:
                self.scratches.append(scratch)
        return scratch

    def _new_scratch(self) -> _Scratch:
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
        # Each worker counts its own per-class histograms; they are summed at the end.
        class_hist = (
            torch.zeros(spec.class_hist_shape(), dtype=torch.int64, device=dev)
            if self.labels is not None
            else None
        )
        return _Scratch(
            raw=raw_t.numpy(),
            raw_t=raw_t,
            y=torch.empty((spec.vocab, n), dtype=f32, device=dev),
            scaled=torch.empty(group, dtype=f32, device=dev),
            expd=torch.empty(group, dtype=f32, device=dev),
            ent=torch.empty(block, dtype=f32, device=dev),
            tmp=torch.empty(block, dtype=f32, device=dev),
            icodes=torch.empty(math.prod(block), dtype=torch.int32, device=dev),
            class_hist=class_hist,
        )

    def _task(self, start: int, stop: int, chunk_start: int, codes_out: Tensor) -> Moments:
        """Statistics of rows ``[start, stop)``; their histogram indices into ``codes_out``."""
        sc = self._scratch()
        moments = Moments(self.spec)
        for b0 in range(start, stop, self.stats_rows):
            b1 = min(stop, b0 + self.stats_rows)
            for a0 in range(b0, b1, self.block_rows):
                self._entropies(sc, a0, min(b1, a0 + self.block_rows), b0)
            m = b1 - b0
            labels = self.labels[b0:b1] if self.labels is not None else None
            codes = codes_out[:, b0 - chunk_start : b1 - chunk_start]
            moments.add_block(sc.ent[:, :m], labels, sc.tmp[:, :m], codes, sc.icodes, sc.class_hist)
        return moments

    def _entropies(self, sc: _Scratch, a0: int, a1: int, b0: int) -> None:
        """Entropies of rows ``[a0, a1)`` at every tau into ``sc.ent`` (its row 0 is ``b0``)."""
        spec = self.spec
        n = (a1 - a0) * spec.num_simplices
        full = n == sc.y.shape[1]
        # This copy is the actual read of a memory-mapped file.
        np.copyto(sc.raw[: a1 - a0], self.array[a0:a1])
        src = sc.raw_t if full else sc.raw_t[: a1 - a0]
        if not self.cpu:
            src = src.to(spec.device)
        y = sc.y if full else sc.y[:, :n]
        # The maxima's indicator lives in the exponentials' buffer before they are computed.
        top = sc.expd[0] if full else sc.expd[0][:, :n]
        lowest, extra = shift(src.view(n, spec.vocab), y, self.mark, top, self.guard)
        for (t0, t1), coef, coef_top in zip(self.groups, self.coefs, self.coef_max, strict=True):
            out = sc.ent[t0:t1, a0 - b0 : a1 - b0].view(t1 - t0, n)
            scaled, expd = sc.scaled[: t1 - t0], sc.expd[: t1 - t0]
            if not full:
                scaled, expd = scaled[:, :, :n], expd[:, :, :n]
            clamp = lowest * coef_top < -FLOAT32_BIG
            entropy_shifted(y, coef, out, scaled, expd, extra, clamp)

    def chunk(self, start: int, stop: int) -> list[Moments]:
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
        self._count(codes[:, :rows])
        return parts

    def _count(self, chunk_codes: Tensor) -> None:
        """Add a chunk's indices to the per-simplex histograms, in the background on a CPU."""
        if self.pool is None:
            for t in range(self.spec.t_count):
                self._count_tau(chunk_codes, t)
        else:
            self.counting = [
                self.pool.submit(self._count_tau, chunk_codes, t) for t in range(self.spec.t_count)
            ]

    def _count_tau(self, chunk_codes: Tensor, t: int) -> None:
        """Count one tau's indices of a chunk into ``fine[t]``.

        On a CPU the counts go first into an int16 histogram (a quarter of the cache of the
        int64 one; a bin gains at most one count per row, so 32,767 rows never overflow it),
        which is then added to the total: counting is a random access per entropy, and stays
        fast only while the histogram fits in the cache.
        """
        codes = chunk_codes[t]
        if not self.cpu:
            flat = codes.reshape(-1)
            self.fine[t].index_add_(0, flat, self.one.expand(flat.numel()))
            return
        local = self._local_counts()
        for r0 in range(0, codes.shape[0], _INT16_ROWS):
            flat = codes[r0 : r0 + _INT16_ROWS].reshape(-1)
            local.zero_()
            local.index_add_(0, flat, self.one16.expand(flat.numel()))
            self.fine[t].add_(local)

    def _local_counts(self) -> Tensor:
        counts: Tensor | None = getattr(self.local, "counts", None)
        if counts is None:
            counts = torch.zeros(self.fine.shape[1], dtype=torch.int16)
            self.local.counts = counts
        return counts

    def _wait_counts(self) -> None:
        for future in self.counting:
            future.result()
        self.counting = []

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """The per-simplex histograms, ``(T, fine_bins * L)`` int64 (index ``bin * L + l``), and
        the per-class ones, ``(T, fine_bins * C)`` (index ``bin * C + c``; empty without labels).
        """
        self._wait_counts()
        by_class = torch.zeros(self.spec.class_hist_shape(), dtype=torch.int64)
        for scratch in self.scratches:
            if scratch.class_hist is not None:
                by_class += scratch.class_hist.cpu()
        return self.fine.cpu().numpy().astype(np.int64), by_class.numpy()
