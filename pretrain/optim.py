"""Optimiser and learning-rate schedule of the pre-training methods.

Parameter groups follow solo-learn / the SEM authors: the self-supervised network's weights get
the weight decay (and, with LARS, the trust ratio); biases and normalisation parameters are
excluded from both when LARS is used (``--exclude_bias_n_norm``, which every CIFAR script of the
authors sets except ``sdswav``); the online classifiers have their own learning rate and no weight
decay. The schedule is a linear warm-up followed by a cosine decay to ``min_lr_ratio`` times the
peak (0, or 0.001 for SwAV's ``--min_lr 0.0006`` at lr 0.6), stepped every optimisation step
(lightly's ``CosineWarmupScheduler``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from lightly.models.utils import get_weight_decay_parameters
from lightly.utils.scheduler import CosineWarmupScheduler
from torch import nn

from semprobe.pretrain.lars import LARS


@dataclass(frozen=True)
class OptimSettings:
    """What the optimiser needs to know.

    Attributes
    ----------
    name: ``lars``, ``sgd`` or ``adamw``.
    lr: learning rate of the self-supervised network (already scaled for the total batch).
    classifier_lr: learning rate of the online classifiers.
    weight_decay: L2 penalty of the self-supervised network's weights.
    warmup_epochs: epochs of linear warm-up before the cosine decay.
    lars_eta: LARS trust coefficient.
    exclude_bias_norm: with LARS, leave biases and norm parameters out of the trust ratio and the
        weight decay.
    min_lr_ratio: the learning rate at the end of the cosine decay, as a fraction of the peak.
    """

    name: str = "lars"
    lr: float = 1.0
    classifier_lr: float = 0.1
    weight_decay: float = 1e-5
    warmup_epochs: int = 10
    lars_eta: float = 0.02
    exclude_bias_norm: bool = True
    min_lr_ratio: float = 0.0


def parameter_groups(
    networks: Iterable[nn.Module], classifiers: nn.Module, settings: OptimSettings
) -> list[dict[str, Any]]:
    """Split parameters into decayed, non-decayed (biases, norms) and classifier groups."""
    nets = list(networks)
    if settings.name == "lars" and settings.exclude_bias_norm:
        decay, no_decay = get_weight_decay_parameters(nets)
    else:
        decay, no_decay = [p for net in nets for p in net.parameters()], []
    groups: list[dict[str, Any]] = [{"params": [p for p in decay if p.requires_grad]}]
    if no_decay:
        groups.append(
            {"params": [p for p in no_decay if p.requires_grad], "weight_decay": 0.0, "lars": False}
        )
    groups.append(
        {
            "params": list(classifiers.parameters()),
            "lr": settings.classifier_lr,
            "weight_decay": 0.0,
            "lars": False,
        }
    )
    return groups


def build_optimizer(groups: list[dict[str, Any]], settings: OptimSettings) -> torch.optim.Optimizer:
    """The optimiser named in ``settings`` over ``groups`` (see :func:`parameter_groups`)."""
    if settings.name == "lars":
        return LARS(
            groups,
            lr=settings.lr,
            momentum=0.9,
            weight_decay=settings.weight_decay,
            eta=settings.lars_eta,
            clip_lr=True,
        )
    # The ``lars`` key only means something to LARS.
    plain = [{k: v for k, v in g.items() if k != "lars"} for g in groups]
    if settings.name == "sgd":
        return torch.optim.SGD(
            plain, lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay
        )
    if settings.name == "adamw":
        return torch.optim.AdamW(plain, lr=settings.lr, weight_decay=settings.weight_decay)
    raise ValueError(f"unknown optimizer {settings.name!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: int,
    min_lr_ratio: float = 0.0,
) -> CosineWarmupScheduler:
    """Linear warm-up over ``warmup_epochs``, then cosine decay to ``min_lr_ratio`` x the peak."""
    total = max(int(total_steps), 1)
    warmup = min(warmup_epochs * max(int(steps_per_epoch), 1), total)
    return CosineWarmupScheduler(
        optimizer, warmup_epochs=warmup, max_epochs=total, start_value=1.0, end_value=min_lr_ratio
    )
