"""Several augmented views through one head, with batch norm still computed view by view.

BYOL and MoCo pass each view through the network on its own, so every BatchNorm layer normalises
one view at a time (solo-learn and the SEM authors do the same). Run view after view, every Linear
layer also runs once per view: with SEM the projector's first layer is L*V x 4096 (65,000 x 4,096,
1 GB in float32 at the paper's L = 5000, V = 13), and two products per branch, two weight
gradients and their sum cost more than the whole ResNet-18 on a CPU (measured in
``bench/pretrain_step.py``). :func:`forward_views` runs a head's per-sample layers once on the
concatenated views and its BatchNorm layers once per view, in view order: the same outputs and
the same running statistics, with one weight read and one weight gradient per step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

# Layers whose output row i depends on input row i only: safe to run on all views at once.
PER_SAMPLE_LAYERS = (nn.Linear, nn.ReLU, nn.GELU, nn.Identity, nn.Dropout)


def _layers(head: nn.Module) -> Iterator[nn.Module]:
    """The layers of a Sequential head (or of lightly's heads, whose ``layers`` is one)."""
    sequential = getattr(head, "layers", head)
    if not isinstance(sequential, nn.Sequential):
        raise TypeError(f"{type(head).__name__} is not a Sequential head")
    for layer in sequential:
        if isinstance(layer, nn.Sequential):
            yield from _layers(layer)
        else:
            yield layer


def forward_views(head: nn.Module, views: Sequence[Tensor]) -> list[Tensor]:
    """``[head(v) for v in views]``, with one matrix product per Linear layer for all views.

    Parameters
    ----------
    head:
        An ``nn.Sequential`` (or a module whose ``layers`` is one) of Linear, activation and
        BatchNorm layers.
    views:
        One ``(batch, features)`` tensor per view.

    Returns
    -------
    list of Tensor
        The head's output for each view.
    """
    sizes = [v.shape[0] for v in views]
    x = torch.cat(list(views))
    for layer in _layers(head):
        if isinstance(layer, _BatchNorm):
            x = torch.cat([layer(chunk) for chunk in x.split(sizes)])
        elif isinstance(layer, PER_SAMPLE_LAYERS):
            x = layer(x)
        else:
            raise TypeError(f"{type(layer).__name__} is not known to act on each sample alone")
    return list(x.split(sizes))
