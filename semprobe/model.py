"""The model every analysis reads: a backbone plus an optional SEM embedder.

``SEMModel`` holds exactly what the analyses need from a trained network (the projector and
predictor of BYOL/MoCo are training-only). Its parameter names are ``backbone.*`` and
``embedder.0.weight`` / ``embedder.1.*``, the layout of the SEM authors' checkpoints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from semprobe.backbones import BACKBONES, build_backbone
from semprobe.errors import SemprobeError
from semprobe.sem import check_shape, sem_softmax
from semprobe.validation import check_tau

METHODS = ("byol", "mocov2plus", "unknown")
# Refuse embedder shapes that could not be a real model before allocating anything: 10^8 SEM
# features at 2,048 backbone features is already 800 GB of weights.
MAX_SEM_WIDTH = 10**8


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a :class:`SEMModel` (plain data, stored in checkpoints).

    Attributes
    ----------
    backbone: ``resnet18``, ``resnet50`` or ``small_cnn``.
    cifar_stem: whether the ResNet uses the 32x32 stem.
    num_simplices, vocab: L and V; both 0 for a model without SEM embedder (a baseline).
    tau: the online SEM temperature used in pre-training (analyses may apply any other).
    tau_target: the momentum branch's temperature, kept for the record.
    method: the self-supervised method that trained it.
    dataset: the pre-training dataset name, for the record.
    normalize: the input normalisation it expects, a preset of :mod:`semprobe.transforms`
        (``authors-cifar`` for the SEM authors' CIFAR checkpoints, ...); empty for semprobe's
        own pretraining statistics (``cifar10``).
    """

    backbone: str = "resnet18"
    cifar_stem: bool = True
    num_simplices: int = 0
    vocab: int = 0
    tau: float = 1.0
    tau_target: float = 1.0
    method: str = "unknown"
    dataset: str = "unknown"
    normalize: str = ""

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise SemprobeError(
                f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}"
            )
        if self.has_sem:
            check_shape(self.num_simplices * self.vocab, self.num_simplices, self.vocab)
            if self.sem_width > MAX_SEM_WIDTH:
                raise SemprobeError(
                    f"L*V = {self.sem_width} is larger than any model this tool reads "
                    f"(limit {MAX_SEM_WIDTH}); the checkpoint's hyper-parameters look corrupt"
                )
            check_tau(self.tau)
            check_tau(self.tau_target)
        elif self.num_simplices or self.vocab:
            raise SemprobeError(
                f"L and V must both be set or both be 0, got L={self.num_simplices}, V={self.vocab}"
            )

    @property
    def has_sem(self) -> bool:
        return self.num_simplices > 0 or self.vocab > 0

    @property
    def sem_width(self) -> int:
        return self.num_simplices * self.vocab

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SemprobeError(f"unknown model spec keys: {', '.join(unknown)}")
        return cls(**data)


def build_embedder(feat_dim: int, width: int) -> nn.Sequential:
    """The SEM embedder: ``Linear(feat, L*V, bias=False)`` then ``BatchNorm1d(L*V)``."""
    return nn.Sequential(nn.Linear(feat_dim, width, bias=False), nn.BatchNorm1d(width))


class SEMModel(nn.Module):
    """Backbone + optional SEM embedder, built from a :class:`ModelSpec`."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.backbone, self.feat_dim = build_backbone(spec.backbone, spec.cifar_stem)
        self.embedder: nn.Sequential | None = (
            build_embedder(self.feat_dim, spec.sem_width) if spec.has_sem else None
        )

    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Backbone features and pre-softmax SEM logits (after the embedder's BatchNorm)."""
        feats = self.backbone(images)
        logits = self.embedder(feats) if self.embedder is not None else None
        return feats, logits

    def forward(self, images: Tensor, tau: float | None = None) -> Tensor:
        """SEM output at ``tau`` (default: the pre-training tau), or backbone features."""
        feats, logits = self.features_and_logits(images)
        if logits is None:
            return feats
        spec = self.spec
        return sem_softmax(logits, spec.num_simplices, spec.vocab, spec.tau if tau is None else tau)


def state_fingerprint(model: nn.Module) -> str:
    """A SHA-256 over parameter/buffer names, shapes, dtypes and bytes: the model's identity.

    Two models with equal fingerprints compute the same function, whichever file they came from;
    the feature cache is keyed on it.
    """
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        if t.numel():  # hashed in place: a copy of a 1 GB embedder would double the time
            digest.update(t.view(torch.uint8).numpy())
    return digest.hexdigest()
