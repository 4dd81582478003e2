"""What BYOL and MoCo v2+ share: an online encoder, its EMA copy, SEM, online read-outs.

Lavoie et al., "Simplicial Embeddings in Self-Supervised Learning and Downstream Classification",
ICLR 2023 (arXiv 2204.00616), Section 3: the SEM layer sits between the backbone and the
projector. The online branch computes

    backbone -> embedder Linear(feat, L*V, bias=False) + BatchNorm1d(L*V) -> softmax_tau_online

and the momentum (target) branch the same with its EMA weights and ``tau_target``. Without SEM
(the baselines) the projector reads the backbone features directly.

The analysed network is the attribute ``encoder``, a :class:`semprobe.model.SEMModel`, so a
checkpoint's ``encoder.*`` weights are exactly what :func:`semprobe.checkpoint.load_model` reads.
Everything else (``momentum_encoder``, projector, predictor, queues, ``classifiers``) is
training-only state.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

import torch
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from semprobe.errors import SemprobeError
from semprobe.model import ModelSpec, SEMModel
from semprobe.pretrain.classifiers import OnlineClassifiers
from semprobe.pretrain.optim import (
    OptimSettings,
    build_optimizer,
    build_scheduler,
    parameter_groups,
)
from semprobe.pretrain.views import forward_views
from semprobe.sem import sem_softmax, simplex_entropy

ModuleT = TypeVar("ModuleT", bound=nn.Module)


class NonFiniteLossError(SemprobeError):
    """The training loss became NaN or infinite; training stops before the weights change."""


class SSLOutput(NamedTuple):
    """A self-supervised step's loss and the online view-1 representations for the read-outs."""

    loss: Tensor
    feats: Tensor
    logits: Tensor | None
    metrics: dict[str, Tensor]


def momentum_networks(online: ModuleT) -> ModuleT:
    """A frozen deep copy of ``online``: the EMA (target) network's initial state."""
    target = copy.deepcopy(online)
    deactivate_requires_grad(target)
    return target


class MomentumMethod(LightningModule):
    """Base of the momentum-encoder methods; subclasses implement :meth:`ssl_step`.

    Parameters
    ----------
    spec:
        The analysed encoder (backbone, optional SEM embedder, taus).
    num_classes:
        Labels seen by the online classifiers.
    optim:
        Optimiser settings.
    base_momentum, final_momentum:
        EMA momentum at the first and last step; cosine schedule in between (BYOL, Sec. 3.2).
    online_taus:
        Temperatures at which online classifiers read the SEM output.
    """

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int,
        optim: OptimSettings,
        base_momentum: float = 0.99,
        final_momentum: float = 1.0,
        online_taus: Sequence[float] = (0.01, 0.1, 1.0),
    ) -> None:
        super().__init__()
        self.spec = spec
        self.optim = optim
        self.base_momentum = base_momentum
        self.final_momentum = final_momentum
        self.encoder = SEMModel(spec)
        self.momentum_encoder = momentum_networks(self.encoder)
        self.classifiers = OnlineClassifiers(
            self.encoder.feat_dim, num_classes, spec.num_simplices, spec.vocab, online_taus
        )

    # --- representations -------------------------------------------------------------------
    @property
    def rep_dim(self) -> int:
        """Width of what the projector reads: L*V with SEM, the backbone width without."""
        return self.spec.sem_width if self.spec.has_sem else self.encoder.feat_dim

    def online(
        self, views: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor | None], list[Tensor]]:
        """Online branch of each view: (backbone features, SEM logits or None, projector input).

        The backbone sees one view at a time; the embedder runs once on all views with batch
        norm per view (:func:`semprobe.pretrain.views.forward_views`).
        """
        feats = [self.encoder.backbone(v) for v in views]
        if self.encoder.embedder is None:
            return feats, [None] * len(feats), feats
        logits = forward_views(self.encoder.embedder, feats)
        spec = self.spec
        reps = [sem_softmax(z, spec.num_simplices, spec.vocab, spec.tau) for z in logits]
        return feats, list(logits), reps

    @torch.no_grad()
    def target(self, views: Sequence[Tensor]) -> list[Tensor]:
        """Momentum branch of each view up to the projector input (SEM at ``tau_target``)."""
        feats = [self.momentum_encoder.backbone(v) for v in views]
        if self.momentum_encoder.embedder is None:
            return feats
        spec = self.spec
        return [
            sem_softmax(z, spec.num_simplices, spec.vocab, spec.tau_target)
            for z in forward_views(self.momentum_encoder.embedder, feats)
        ]

    # --- to implement ------------------------------------------------------------------------
    def ssl_step(self, view1: Tensor, view2: Tensor) -> SSLOutput:
        """The method's loss on a pair of views."""
        raise NotImplementedError

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, EMA) module pairs; subclasses add their projector."""
        return [(self.encoder, self.momentum_encoder)]

    def ssl_networks(self) -> list[nn.Module]:
        """Modules trained by the self-supervised loss; subclasses add their heads."""
        return [self.encoder]

    # --- one step ----------------------------------------------------------------------------
    def compute_losses(self, batch: Sequence[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss (self-supervised + online classifiers) and metrics for one batch."""
        view1, view2, labels = batch
        out = self.ssl_step(view1, view2)
        cls_loss, cls_metrics = self.classifiers(out.feats, out.logits, labels)
        metrics = {"ssl_loss": out.loss.detach(), "classifier_loss": cls_loss.detach()}
        metrics |= out.metrics
        metrics |= {f"online/{k}": v for k, v in cls_metrics.items()}
        if out.logits is not None:
            spec = self.spec
            with torch.no_grad():
                h = simplex_entropy(out.logits.detach(), spec.num_simplices, spec.vocab, spec.tau)
            metrics["entropy_mean"] = h.mean()
            metrics["entropy_std"] = h.std()
        return out.loss + cls_loss, metrics

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        loss, metrics = self.compute_losses(batch)
        finite = bool(torch.isfinite(loss).item())
        # Every process must take the same decision, or the others would wait forever.
        if not self.trainer.strategy.reduce_boolean_decision(finite, all=True):
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at step {self.global_step} (epoch "
                f"{self.current_epoch}); stopped before updating the weights. The last "
                "checkpoint written is intact: lower --lr or use --grad-clip, then --resume it"
            )
        size = batch[0].shape[0]
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in metrics.items()}, batch_size=size)
        return loss

    # --- EMA -------------------------------------------------------------------------------------
    def momentum_at(self, step: int, total_steps: int) -> float:
        """EMA momentum after optimiser step ``step`` (0-based): cosine from base to final."""
        return cosine_schedule(step, max(total_steps, 1), self.base_momentum, self.final_momentum)

    def update_momentum_networks(self, momentum: float) -> None:
        """``xi <- m xi + (1 - m) theta`` for every (online, EMA) pair (lightly's EMA)."""
        for online, target in self.momentum_pairs():
            update_momentum(online, target, momentum)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # After the optimiser step, as in BYOL: global_step already counts this step.
        total = int(self.trainer.estimated_stepping_batches)
        momentum = self.momentum_at(self.global_step - 1, total)
        self.update_momentum_networks(momentum)
        self.log("train/ema_momentum", momentum, batch_size=batch[0].shape[0])

    # --- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = self.trainer.num_training_batches  # inf when no epoch limit was set
        steps_per_epoch = int(per_epoch) if math.isfinite(per_epoch) else total
        groups = parameter_groups(self.ssl_networks(), self.classifiers, self.optim)
        optimizer = build_optimizer(groups, self.optim)
        scheduler = build_scheduler(optimizer, total, steps_per_epoch, self.optim.warmup_epochs)
        schedule = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}
