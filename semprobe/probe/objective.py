"""The smooth part of the probe's loss: mean cross-entropy plus the L2 term, and its gradient."""

from __future__ import annotations

import torch
from torch import Tensor

from semprobe.probe.stream import RowStream


class Objective:
    """Smooth part of the loss (mean cross-entropy + l2/2 ||W||^2) and its gradient.

    The parameters are one ``(n_classes, n_features + 1)`` tensor ``theta``: the weights (applied
    to centred features) and, in the last column, the centred intercept. Centring leaves the L1
    term unchanged and makes the problem better conditioned (see ``docs/probe.md``).

    Parameters
    ----------
    stream:
        The training rows.
    y:
        ``(n,)`` int64 class indices on the stream's device.
    n_classes:
        Number of classes.
    mean:
        ``(n_features,)`` float32 feature means subtracted from every row (zeros: no centring).
    l2:
        L2 strength on the weights (not the intercept).
    fit_intercept:
        If false the intercept's gradient is zero, so it stays where it starts.

    Attributes
    ----------
    passes:
        Number of evaluations so far, i.e. passes over the data.
    """

    def __init__(
        self,
        stream: RowStream,
        y: Tensor,
        n_classes: int,
        mean: Tensor,
        l2: float,
        fit_intercept: bool,
    ) -> None:
        self.stream = stream
        self.y = y
        self.n_classes = n_classes
        self.mean = mean
        self.l2 = l2
        self.fit_intercept = fit_intercept
        self.passes = 0

    def __call__(self, theta: Tensor) -> tuple[float, Tensor]:
        """Loss (float64) and gradient at ``theta``: one pass over the data."""
        d = self.stream.n_features
        weights, bias = theta[:, :d], theta[:, d]
        shift = bias - weights @ self.mean
        # Contiguous accumulators: BLAS writes into a strided view more slowly.
        grad_w = torch.zeros(self.n_classes, d, dtype=torch.float32, device=theta.device)
        grad_b = torch.zeros(self.n_classes, dtype=torch.float32, device=theta.device)
        loss = torch.zeros((), dtype=torch.float64, device=theta.device)
        for start, stop, block in self.stream:
            labels = self.y[start:stop, None]
            log_p = torch.log_softmax(torch.addmm(shift, block, weights.T), dim=1)
            loss -= log_p.gather(1, labels).sum(dtype=torch.float64)
            resid = log_p.exp_()  # softmax - onehot(y), built in place
            resid.scatter_add_(1, labels, torch.full(labels.shape, -1.0, device=resid.device))
            grad_w.addmm_(resid.T, block)
            grad_b += resid.sum(0)
        self.passes += 1
        n = self.stream.n
        # sum_i r_i (x_i - mu)^T = sum_i r_i x_i^T - (sum_i r_i) mu^T
        grad_w -= torch.outer(grad_b, self.mean)
        grad_w /= n
        grad_b /= n
        value = float(loss) / n
        if self.l2 > 0:
            grad_w += self.l2 * weights
            value += 0.5 * self.l2 * float((weights.double() ** 2).sum())
        if not self.fit_intercept:
            grad_b.zero_()
        return value, torch.cat([grad_w, grad_b[:, None]], dim=1)
