"""Pre-training of SEM and baseline self-supervised models on Lightning.

The seven methods the SEM authors ran (BYOL, MoCo v2+, SimCLR, Barlow Twins, VICReg, SwAV, DINO),
each with or without the SEM layer, one module per method.

Lavoie et al., "Simplicial Embeddings in Self-Supervised Learning and Downstream Classification",
ICLR 2023 (arXiv 2204.00616). Python API::

    from semprobe.pretrain import PretrainConfig, run
    path = run(PretrainConfig(method="byol", dataset="synthetic", epochs=5, out="runs/demo"))

``path`` is a checkpoint that :func:`semprobe.checkpoint.load_model` reads and that
``--resume`` continues. The command line is ``semprobe pretrain`` (or ``python -m pretrain``).

Heavy modules (torch, Lightning, lightly) are imported on first use, so that importing the command
line stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from semprobe.pretrain.config import METHODS, PretrainConfig

if TYPE_CHECKING:
    from semprobe.pretrain.barlowtwins import BarlowTwins
    from semprobe.pretrain.base import MomentumMethod, NonFiniteLossError, SSLMethod
    from semprobe.pretrain.byol import BYOL
    from semprobe.pretrain.dino import DINO
    from semprobe.pretrain.mocov2plus import MoCoV2Plus
    from semprobe.pretrain.simclr import SimCLR
    from semprobe.pretrain.swav import SwAV
    from semprobe.pretrain.train import build_module, run
    from semprobe.pretrain.vicreg import VICReg

__all__ = [
    "BYOL",
    "DINO",
    "METHODS",
    "BarlowTwins",
    "MoCoV2Plus",
    "MomentumMethod",
    "NonFiniteLossError",
    "PretrainConfig",
    "SSLMethod",
    "SimCLR",
    "SwAV",
    "VICReg",
    "build_module",
    "run",
]

_LAZY = {
    "BYOL": "semprobe.pretrain.byol",
    "BarlowTwins": "semprobe.pretrain.barlowtwins",
    "DINO": "semprobe.pretrain.dino",
    "MoCoV2Plus": "semprobe.pretrain.mocov2plus",
    "MomentumMethod": "semprobe.pretrain.base",
    "NonFiniteLossError": "semprobe.pretrain.base",
    "SSLMethod": "semprobe.pretrain.base",
    "SimCLR": "semprobe.pretrain.simclr",
    "SwAV": "semprobe.pretrain.swav",
    "VICReg": "semprobe.pretrain.vicreg",
    "build_module": "semprobe.pretrain.train",
    "run": "semprobe.pretrain.train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pretrain' has no attribute {name!r}")
