"""LARS with learning-rate clipping, as the SEM authors trained BYOL (+SEM).

You et al., "Large Batch Training of Convolutional Networks" (arXiv 1708.03888), in the variant of
solo-learn (``solo/utils/lars.py``) that the SEM authors' CIFAR scripts select with
``--lars --grad_clip_lars --eta_lars 0.02 --exclude_bias_n_norm``.

Why not ``lightly.utils.lars.LARS``: it has no learning-rate clipping. With clipping the step of a
layer is ``min(eta * ||w|| / ||g + wd w||, lr)`` instead of ``lr * eta * ||w|| / ||g + wd w||``: at
lr = 1.0 the two agree, but during warm-up and the cosine decay they differ by up to 1 / lr, so the
authors' schedule cannot be reproduced without it. Exclusion of biases and norm parameters is done,
as in lightly, by putting them in a group with ``lars=False`` and no weight decay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim.optimizer import Optimizer


class LARS(Optimizer):
    """SGD with momentum and layer-wise trust ratios, optionally clipped at the learning rate.

    Parameters
    ----------
    params:
        Parameters or groups. A group with ``lars=False`` is updated by plain SGD (with its own
        weight decay, usually 0): the biases, norm parameters and online classifiers.
    lr:
        Learning rate.
    momentum:
        Heavy-ball momentum, PyTorch convention (``v = mu v + d``; ``p -= lr v``).
    weight_decay:
        L2 penalty added to the gradient before the trust ratio is applied.
    eta:
        Trust coefficient (0.02 in the authors' CIFAR scripts).
    clip_lr:
        Clip the layer's adapted learning rate at ``lr`` (solo-learn's ``clip_lr``).
    eps:
        Added to the trust ratio's denominator.

    :meth:`step` overwrites each ``.grad`` with the update it applies (before momentum).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.02,
        clip_lr: bool = True,
        eps: float = 1e-8,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0 or eta <= 0:
            raise ValueError("LARS needs lr >= 0, momentum >= 0, weight_decay >= 0 and eta > 0")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "eta": eta,
            "clip_lr": clip_lr,
            "eps": eps,
            "lars": True,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one update; ``closure`` re-evaluates the loss (Lightning passes one)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                # The update is built in the gradient's own storage (as NVIDIA apex's LARC does):
                # with SEM one layer is L*V x 4096, and each temporary copy would be 1 GB.
                d_p = p.grad
                if group["lars"]:
                    p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d_p)
                    # Layers with a zero weight or gradient norm take the plain gradient step.
                    valid = (p_norm > 0) & (g_norm > 0)
                    ratio = group["eta"] * p_norm / (g_norm + wd * p_norm + group["eps"])
                    if group["clip_lr"] and lr > 0:
                        ratio = torch.clamp(ratio / lr, max=1.0)
                    ratio = torch.where(valid, ratio, torch.zeros_like(ratio))
                    # (g + wd p) * ratio where valid, g elsewhere; tensor ops avoid a host sync.
                    d_p.mul_(torch.where(valid, ratio, torch.ones_like(ratio)))
                    d_p.addcmul_(p, wd * ratio)
                elif wd:
                    d_p.add_(p, alpha=wd)
                if group["momentum"]:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = d_p.detach().clone()
                    else:
                        state["momentum_buffer"].mul_(group["momentum"]).add_(d_p)
                    d_p = state["momentum_buffer"]
                p.add_(d_p, alpha=-lr)
        return loss
