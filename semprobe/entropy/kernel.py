"""The entropy kernel: per-simplex entropies of a block of logits at several temperatures.

The entropy is computed in float32 in the log-sum-exp form ``H = ln S - sum_j e_j s_j / S`` with
``s = (z - max z) / tau``, ``e = exp(s)`` and ``S = sum_j e_j``; both terms are non-negative, so
nothing cancels. ``S = 1 + R`` where ``R`` sums the vertices other than the maximum, and
``ln S`` is taken as ``log1p(R)``: a sharp simplex (``R`` of 1e-7, say) keeps its relative
precision instead of rounding ``1 + R`` to 1. docs/entropy.md derives it and gives its cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from semprobe.sem import check_shape
from semprobe.validation import check_tau

LN2 = math.log(2.0)
LOG2E = 1.0 / LN2

# The largest finite values used: a coefficient cap (tau below ~1e-30) and a floor on logits.
_MAX_COEF = 1e30
FLOAT32_BIG = 3e38
# The scaled value below which exp2 is 0 in float32 (2**-150 rounds to 0), with a margin.
_VANISHES = -160.0
_SCALE_UP = 2.0**127


def entropy_kernel(logits: Tensor, num_simplices: int, vocab: int, taus: Sequence[float]) -> Tensor:
    """Per-simplex entropy of a block of logits at several temperatures at once.

    Equal to stacking :func:`semprobe.sem.simplex_entropy` over ``taus`` (to float32 precision),
    and faster: the group maximum is subtracted once for all taus and ``exp`` is an ``exp2`` of
    pre-scaled values.

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

    Examples
    --------
    >>> import torch
    >>> logits = torch.tensor([[0.0, 0.0, 9.0, 0.0]])  # one sample, L = 2 simplices of V = 2
    >>> h = entropy_kernel(logits, 2, 2, [0.1, 1.0])
    >>> h.shape
    torch.Size([2, 1, 2])
    >>> [round(v, 4) for v in h[:, 0, 0].tolist()]  # two equal logits: ln 2 at every tau
    [0.6931, 0.6931]
    >>> [round(v, 4) for v in h[:, 0, 1].tolist()]  # one far ahead: near 0, less so at tau 1
    [0.0, 0.0012]
    """
    taus = [check_tau(t) for t in taus]
    coef = coefficients(taus, logits.device)
    check_shape(logits.shape[-1], num_simplices, vocab)
    rows = logits.shape[0]
    n = rows * num_simplices
    y = torch.empty((vocab, n), dtype=torch.float32, device=logits.device)
    mark = sentinel(coef)
    lowest, extra = shift(logits.reshape(n, vocab), y, mark, torch.empty_like(y))
    out = torch.empty((len(coef), n), dtype=torch.float32, device=logits.device)
    scaled = torch.empty((len(coef), vocab, n), dtype=torch.float32, device=logits.device)
    clamp = lowest * float(coef.max()) < -FLOAT32_BIG
    entropy_shifted(y, coef, out, scaled, torch.empty_like(scaled), extra, clamp)
    return out.view(len(coef), rows, num_simplices)


def coefficients(taus: Sequence[float], device: torch.device) -> Tensor:
    """``log2(e) / tau`` per tau, shape ``(T, 1, 1)``: the factor that turns exp into exp2.

    Capped at 1e30 (tau below ~1e-30), so that it is finite; vertices below the maximum then
    have weight 0 unless their logit is within ~1e-28 of it.
    """
    values = [min(LOG2E / t, _MAX_COEF) for t in taus]
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)


def sentinel(coef: Tensor) -> float:
    """The value that replaces the maxima of ``y``: its scaled value vanishes at every tau.

    ``sentinel * c <= -160`` for every coefficient ``c``, so ``exp2`` of it is 0 and its product
    with that 0 is 0. It is as negative as it can be without ``sentinel * max(c)`` passing
    -1.5e38 (nor itself): exp2 is several times slower on inputs whose result is subnormal
    than on far smaller ones. Only for taus more than 1e36 apart does the product overflow,
    which the callers' clamp (made when the lowest value times the largest coefficient passes -3e38)
    keeps finite.
    """
    far = -0.5 * FLOAT32_BIG / max(float(coef.max()), 1.0)
    near = _VANISHES / float(coef.min())
    return far if far <= near else near


def shift(
    grouped: Tensor, y: Tensor, mark: float, top: Tensor, guard: bool = True
) -> tuple[float, Tensor]:
    """``y = (grouped - group max)`` transposed, ``(n, V)`` any dtype to ``(V, n)`` float32, with
    every maximum (the zeros) replaced by ``mark`` (see :func:`sentinel`).

    ``top`` is ``(V, n)`` float32 scratch. Returns the lowest value of ``y`` (``mark`` without
    ``guard``: inputs whose range cannot overflow) and, per group, the number of maxima minus
    one (``(n,)`` float32), which :func:`entropy_shifted` adds back. With ``guard``, ``y`` is
    floored at -3e38 (finite).
    """
    # One strided copy converts to float32 and puts the vertex axis first, so that every
    # reduction over the V vertices is a vectorised sum of V rows.
    y.copy_(grouped.t())
    # The group maximum is shared by all taus: max(z / tau) = max(z) / tau.
    y.sub_(y.amax(dim=0))
    if guard:
        y.clamp_(min=-FLOAT32_BIG)
    # z - max z is exactly 0 at the maxima: take them out of the sum, so that it is R = S - 1
    # (the constant 1 stands for one maximum, ``extra`` for the others). 1 at a maximum and 0
    # elsewhere is exp2(y * 2**254): any negative float32 times 2**254 is below -150 (float
    # arithmetic, cheaper here than a comparison and a masked fill).
    torch.mul(y, _SCALE_UP, out=top).mul_(_SCALE_UP).exp2_()
    extra = top.sum(dim=0).sub_(1.0)
    y.add_(top, alpha=mark)
    return (float(y.amin()) if guard else mark), extra


def entropy_shifted(
    y: Tensor,
    coef: Tensor,
    out: Tensor,
    scaled: Tensor,
    expd: Tensor,
    extra: Tensor,
    clamp: bool = False,
) -> None:
    """Fill ``out`` (``(T, n)``) with the entropies of the shifted groups ``y`` (``(V, n)``,
    maxima replaced as by :func:`shift`, which also gives ``extra``).

    ``scaled`` and ``expd`` are ``(T, V, n)`` float32 scratch. ``clamp`` is needed when
    ``y * coef`` can overflow: -inf * 0 would be nan, while the weight is 0 anyway.
    """
    # s2 = (z - max) / (tau ln 2) <= 0, so e = 2**s2 = exp((z - max) / tau) lies in [0, 1).
    torch.mul(y.unsqueeze(0), coef, out=scaled)
    if clamp:
        scaled.clamp_(min=-FLOAT32_BIG)
    torch.exp2(scaled, out=expd)
    rest = expd.sum(dim=1).add_(extra)  # R = S - 1: every vertex but one maximum
    weighted = scaled.mul_(expd).sum(dim=1)
    # ln S = ln(1 + R) from u = fl(1 + R), corrected for the rounding of u (exact to first
    # order, and R itself where 1 + R rounds to 1); cheaper than log1p.
    total = rest + 1.0
    log_s = torch.log(total)
    log_s.add_(rest.sub_(total - 1.0).div_(total))
    # H = ln S - ln 2 * sum(e * s2) / S; both terms are >= 0.
    weighted.div_(total).mul_(-LN2)
    torch.add(weighted, log_s, out=out)
    out.clamp_(min=0.0)
