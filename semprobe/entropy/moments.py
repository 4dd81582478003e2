"""Streaming accumulators: running per-simplex sums, extremes and bins of entropies, all taus."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from semprobe.entropy.bins import BinLayout
from semprobe.entropy.kernel import LN2, LOG2E

_ONE = torch.ones(1, dtype=torch.int64)


@dataclass(frozen=True)
class Spec:
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
    layout: BinLayout

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
    ) -> Spec:
        """The spec of an analysis, with its derived constants."""
        layout = BinLayout(quantile_bins, math.log(vocab))
        index_dtype = torch.int32 if num_simplices * layout.count < 2**31 else torch.int64
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
            layout=layout,
        )

    @property
    def index_dtype(self) -> torch.dtype:
        """dtype of the per-simplex histogram indices ``bin * L + simplex``."""
        return self.simplex_ids.dtype

    @property
    def fine_bins(self) -> int:
        """Bins of each per-simplex and per-class histogram (see :mod:`.bins`)."""
        return self.layout.count

    def class_hist_shape(self) -> tuple[int, int]:
        """``(T, C * fine_bins)``: the per-class histograms, index ``bin * C + class``."""
        return (self.t_count, self.num_classes * self.layout.count)


class Moments:
    """Running sums over samples for all taus at once (float64 where they are sums of entropies).

    Mean and M2 (sum of squared deviations) are kept per simplex and merged with Chan et al.'s
    pairwise formula, which stays exact where sum-of-squares formulas cancel. The smallest and
    largest entropy are kept per simplex and per class.
    """

    def __init__(self, spec: Spec) -> None:
        f64, f32 = torch.float64, torch.float32
        t, simplices, dev = spec.t_count, spec.num_simplices, spec.device
        self.spec = spec
        self.n = 0
        self.mean = torch.zeros((t, simplices), dtype=f64, device=dev)
        self.m2 = torch.zeros((t, simplices), dtype=f64, device=dev)
        self.eff = torch.zeros((t, simplices), dtype=f64, device=dev)
        self.lo = torch.full((t, simplices), math.inf, dtype=f32, device=dev)
        self.hi = torch.full((t, simplices), -math.inf, dtype=f32, device=dev)
        self.class_lo = torch.full((t, spec.num_classes), math.inf, dtype=f32, device=dev)
        self.class_hi = torch.full((t, spec.num_classes), -math.inf, dtype=f32, device=dev)
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

    def merge(self, other: Moments) -> None:
        """Add the samples summarised by ``other``."""
        if other.n == 0:
            return
        self._merge_moments(other.n, other.mean, other.m2)
        self.eff.add_(other.eff)
        torch.minimum(self.lo, other.lo, out=self.lo)
        torch.maximum(self.hi, other.hi, out=self.hi)
        torch.minimum(self.class_lo, other.class_lo, out=self.class_lo)
        torch.maximum(self.class_hi, other.class_hi, out=self.class_hi)
        self.near.add_(other.near)
        self.class_sum.add_(other.class_sum)
        if self.hist is not None and other.hist is not None:
            self.hist.add_(other.hist)

    def add_block(
        self,
        ent: Tensor,
        labels: Tensor | None,
        tmp: Tensor,
        codes: Tensor,
        int_scratch: Tensor,
        class_hist: Tensor | None = None,
    ) -> None:
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
            histograms (layout ``(fine_bins, L)``).
        int_scratch:
            Contiguous int32 scratch of at least ``T * m * L`` elements.
        class_hist:
            ``(T, C * fine_bins)`` int64 per-class histograms to add this block to (with labels).
        """
        f64 = torch.float64
        m = ent.shape[1]
        # Block sums over at most a few hundred rows are taken in float32 (exact enough, and
        # faster than float64 reductions) and accumulated in float64.
        mean_b = ent.sum(dim=1).div_(m)
        # Two-pass M2 of the block around its own mean, then a pairwise merge.
        torch.sub(ent, mean_b.unsqueeze(1), out=tmp)
        m2_b = tmp.square_().sum(dim=1)
        self._merge_moments(m, mean_b.to(f64), m2_b.to(f64))
        torch.mul(ent, LOG2E, out=tmp)
        self.eff.add_(tmp.exp2_().sum(dim=1).to(f64))
        self._count_near(ent, tmp)
        self._extremes(ent, labels)
        if labels is not None:
            self.class_sum.index_add_(1, labels, ent.sum(dim=2).to(f64))
        scratch = int_scratch.view(-1)[: ent.numel()].view(ent.shape)
        self._bin(ent, tmp, codes, scratch)
        if labels is not None and class_hist is not None:
            self._bin_classes(codes, labels, class_hist, scratch)
        # The per-simplex index: bin * L + simplex.
        torch.add(self.spec.simplex_ids, codes, alpha=self.spec.num_simplices, out=codes)

    def _extremes(self, ent: Tensor, labels: Tensor | None) -> None:
        """Update the smallest and largest entropy per simplex and per class."""
        torch.minimum(self.lo, ent.amin(dim=1), out=self.lo)
        torch.maximum(self.hi, ent.amax(dim=1), out=self.hi)
        if labels is None:
            return
        index = labels.view(1, -1).expand(ent.shape[0], -1)
        self.class_lo.scatter_reduce_(1, index, ent.amin(dim=2), "amin")
        self.class_hi.scatter_reduce_(1, index, ent.amax(dim=2), "amax")

    def _bin_classes(self, bins: Tensor, labels: Tensor, class_hist: Tensor, flat: Tensor) -> None:
        """Add the fine bins ``bins`` (``(T, m, L)``) of a block to the per-class histograms
        (``flat``: contiguous integer scratch of the same shape)."""
        spec = self.spec
        m = bins.shape[1]
        width = spec.num_classes * spec.layout.count
        # flat = bins * C + label + tau * C * fine_bins, in one pass.
        offsets = (labels.view(1, m, 1) + spec.tau_offsets * width).to(flat.dtype)
        torch.add(offsets, bins, alpha=spec.num_classes, out=flat)
        index = flat.view(-1)
        class_hist.view(-1).index_add_(0, index, _ONE.to(class_hist.device).expand(index.numel()))

    def _count_near(self, ent: Tensor, tmp: Tensor) -> None:
        """Count the entropies near one-hot, two-hot and uniform (``tmp`` is scratch)."""
        spec = self.spec
        # Counts as sums of sign(relu(.)) in {0, 1}: exact in float32 (a block has < 2**24
        # entries per tau) and cheaper than boolean masks.
        torch.sub(spec.eps, ent, out=tmp)
        self.near[0].add_(tmp.clamp_(min=0.0).sign_().sum(dim=(1, 2)).to(torch.int64))
        torch.sub(ent, LN2, out=tmp).abs_()
        torch.sub(spec.eps, tmp, out=tmp)
        self.near[1].add_(tmp.clamp_(min=0.0).sign_().sum(dim=(1, 2)).to(torch.int64))
        torch.sub(ent, spec.log_v - spec.eps, out=tmp)
        self.near[2].add_(tmp.clamp_(min=0.0).sign_().sum(dim=(1, 2)).to(torch.int64))

    def _bin(self, ent: Tensor, tmp: Tensor, codes: Tensor, int_scratch: Tensor) -> None:
        """Write the fine bin of every entropy into ``codes``; count the coarse histogram if it
        is not derived from the fine ones."""
        spec = self.spec
        spec.layout.codes(ent, codes, tmp, int_scratch)
        if self.hist is not None:
            coarse = torch.mul(ent, spec.bins / spec.log_v, out=tmp).long()
            coarse.clamp_(0, spec.bins - 1).add_(spec.tau_offsets * spec.bins)
            counts = torch.bincount(coarse.view(-1), minlength=spec.t_count * spec.bins)
            self.hist.add_(counts.view(spec.t_count, spec.bins))
