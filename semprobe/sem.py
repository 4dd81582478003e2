"""The Simplicial-Embedding operation, defined once for the whole project.

Lavoie et al., "Simplicial Embeddings in Self-Supervised Learning and Downstream Classification",
ICLR 2023 (arXiv 2204.00616): a representation ``z`` in R^(L*V) is split into L groups of V
logits and each group is mapped onto the probability simplex, ``z_bar_i = softmax(z_i / tau)``.

Both pretraining (``pretrain/``) and every analysis import :func:`sem_softmax` and
:func:`simplex_entropy` from here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from semprobe.errors import SemprobeError
from semprobe.validation import check_tau


def check_shape(width: int, num_simplices: int, vocab: int) -> None:
    """Raise unless ``width == num_simplices * vocab`` with both factors positive."""
    if num_simplices <= 0 or vocab <= 0:
        raise SemprobeError(f"L and V must be positive, got L={num_simplices}, V={vocab}")
    if width != num_simplices * vocab:
        raise SemprobeError(
            f"feature width {width} is not L*V = {num_simplices}*{vocab} = {num_simplices * vocab}"
        )


def sem_softmax(logits: Tensor, num_simplices: int, vocab: int, tau: float = 1.0) -> Tensor:
    """Apply the SEM softmax: ``(..., L*V)`` logits to ``(..., L*V)`` simplex probabilities.

    Parameters
    ----------
    logits:
        Tensor whose last dimension is ``L*V``.
    num_simplices, vocab:
        L (number of simplices) and V (vertices per simplex).
    tau:
        Softmax temperature, > 0. Stable down to 1e-4 and for large logits: the softmax is taken
        in float32 (or float64 if given) after subtracting each group's maximum.

    Returns
    -------
    Tensor
        Same shape as ``logits``; each consecutive group of V entries sums to 1.
    """
    tau = check_tau(tau)
    check_shape(logits.shape[-1], num_simplices, vocab)
    work = logits if logits.dtype == torch.float64 else logits.float()
    grouped = work.reshape(*logits.shape[:-1], num_simplices, vocab)
    # softmax subtracts the max internally; dividing by tau first is what makes small tau
    # overflow-free only because of that subtraction.
    probs = torch.softmax(grouped / tau, dim=-1)
    return probs.reshape(logits.shape).to(
        logits.dtype if logits.is_floating_point() else work.dtype
    )


def simplex_entropy(
    logits: Tensor, num_simplices: int, vocab: int, tau: float = 1.0, normalized: bool = False
) -> Tensor:
    """Per-simplex Shannon entropy (natural log) of the SEM output at temperature ``tau``.

    ``H(z_bar_i) = -sum_j p_ij log p_ij`` with ``0 log 0 := 0``, computed from log-probabilities
    so that it is exact for near-one-hot simplices.

    Returns
    -------
    Tensor
        Shape ``(..., L)``, values in ``[0, ln V]`` (``[0, 1]`` when ``normalized``).
    """
    tau = check_tau(tau)
    check_shape(logits.shape[-1], num_simplices, vocab)
    work = logits if logits.dtype == torch.float64 else logits.float()
    grouped = work.reshape(*logits.shape[:-1], num_simplices, vocab) / tau
    log_p = torch.log_softmax(grouped, dim=-1)
    # exp(log_p) * log_p is 0 * -inf = nan only when log_p is -inf; those terms are 0 by definition.
    terms = torch.where(torch.isinf(log_p), torch.zeros_like(log_p), log_p.exp() * log_p)
    entropy = (-terms.sum(dim=-1)).clamp_min(0.0)
    if normalized:
        entropy = entropy / math.log(vocab) if vocab > 1 else torch.zeros_like(entropy)
    return entropy


class SimplicialEmbedding(nn.Module):
    """``nn.Module`` form of :func:`sem_softmax` (no parameters)."""

    def __init__(self, num_simplices: int, vocab: int, tau: float = 1.0) -> None:
        super().__init__()
        check_shape(num_simplices * vocab, num_simplices, vocab)
        self.num_simplices = num_simplices
        self.vocab = vocab
        self.tau = check_tau(tau)

    def forward(self, logits: Tensor) -> Tensor:
        return sem_softmax(logits, self.num_simplices, self.vocab, self.tau)

    def extra_repr(self) -> str:
        return f"L={self.num_simplices}, V={self.vocab}, tau={self.tau}"
