"""Entropy analysis of SEM outputs, streamed from cached pre-softmax logits.

Given logits of shape ``(N, L*V)`` (an in-memory array or a ``np.memmap`` of a cached ``.npy``,
float16 or float32), :func:`entropy_report` computes, for every temperature in a set of taus, the
Shannon entropy (natural log) of ``softmax(z_i / tau)`` for every (sample, simplex) pair and
summarises it in an :class:`EntropyReport`: per-simplex moments and quantiles, the histogram over
all pairs, per-class and per-superclass means, and the fractions of near one-hot, two-hot and
uniform pairs. :func:`entropy_kernel` is the per-block computation. How it is computed, and how
fast and how accurate it is: docs/entropy.md.

Modules: ``kernel`` (the entropies of a block), ``moments`` (streaming sums), ``quantiles``,
``paging`` (memory-map residency), ``runner`` (chunks on worker threads), ``arguments``,
``tables`` and ``report`` (the result), ``analysis`` (:func:`entropy_report`).
"""

from __future__ import annotations

from semprobe.entropy.analysis import entropy_report
from semprobe.entropy.kernel import entropy_kernel
from semprobe.entropy.paging import RowPager
from semprobe.entropy.report import EntropyReport
from semprobe.entropy.runner import default_chunk_rows

__all__ = ["EntropyReport", "RowPager", "default_chunk_rows", "entropy_kernel", "entropy_report"]
