"""What every method shares: the analysed encoder, SEM, online read-outs, optimisation, EMA.

Lavoie et al., "Simplicial Embeddings in Self-Supervised Learning and Downstream Classification",
ICLR 2023 (arXiv 2204.00616), Section 3: the SEM layer sits between the backbone and the
projector. The online branch computes

    backbone -> embedder Linear(feat, L*V, bias=False) + BatchNorm1d(L*V) -> softmax_tau

and, for the methods with a momentum (EMA) branch, the momentum branch the same with its EMA
weights and ``tau_target``. The methods without one (SimCLR, Barlow Twins, VICReg, SwAV) apply
``tau_target`` to the second view, as the authors' ``sdsimclr``, ``sdbarlow`` and ``sdswav`` do.
Without SEM (the baselines) the projector reads the backbone features directly.

The analysed network is the attribute ``encoder``, a :class:`semprobe.model.SEMModel`, so a
checkpoint's ``encoder.*`` weights are exactly what :func:`semprobe.checkpoint.load_model` reads.
Everything else (``momentum_encoder``, heads, queues, centres, ``classifiers``) is training-only
state, saved in the same checkpoint so that a resumed run continues exactly.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

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

if TYPE_CHECKING:
    from semprobe.pretrain.config import PretrainConfig

ModuleT = TypeVar("ModuleT", bound=nn.Module)
# The attributes of lightly's CosineWarmupScheduler that depend on the run's length.
_SCHEDULE_LENGTHS = ("warmup_epochs", "max_epochs")


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


class SSLMethod(LightningModule):
    """Base of every method; subclasses implement :meth:`ssl_step`.

    Parameters
    ----------
    spec:
        The analysed encoder (backbone, optional SEM embedder, taus).
    num_classes:
        Labels seen by the online classifiers.
    optim:
        Optimiser settings.
    online_taus:
        Temperatures at which online classifiers read the SEM output.
    """

    # SEM temperature of each view in the online branch: "online" (spec.tau) or "target"
    # (spec.tau_target). The methods without a momentum branch use (online, target).
    VIEW_TAUS: ClassVar[tuple[str, str]] = ("online", "online")
    # LARS settings of the authors' script (see semprobe.pretrain.optim).
    EXCLUDE_BIAS_NORM: ClassVar[bool] = True
    MIN_LR_RATIO: ClassVar[float] = 0.0

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int,
        optim: OptimSettings,
        online_taus: Sequence[float] = (0.01, 0.1, 1.0),
    ) -> None:
        super().__init__()
        self.spec = spec
        self.optim = optim
        self.encoder = SEMModel(spec)
        self.classifiers = OnlineClassifiers(
            self.encoder.feat_dim, num_classes, spec.num_simplices, spec.vocab, online_taus
        )

    @classmethod
    def options(cls, cfg: PretrainConfig) -> dict[str, Any]:
        """Constructor arguments of a resolved configuration, besides spec, classes and optim."""
        return {
            "online_taus": cfg.online_taus,
            "proj_hidden_dim": cfg.proj_hidden_dim,
            "proj_output_dim": cfg.proj_output_dim,
        }

    # --- representations -------------------------------------------------------------------
    @property
    def rep_dim(self) -> int:
        """Width of what the projector reads: L*V with SEM, the backbone width without."""
        return self.spec.sem_width if self.spec.has_sem else self.encoder.feat_dim

    def view_taus(self) -> tuple[float, float]:
        """The SEM temperatures of views 1 and 2 in the online branch (see :attr:`VIEW_TAUS`)."""
        by_name = {"online": self.spec.tau, "target": self.spec.tau_target}
        return by_name[self.VIEW_TAUS[0]], by_name[self.VIEW_TAUS[1]]

    def online(
        self, views: Sequence[Tensor], taus: Sequence[float] | None = None
    ) -> tuple[list[Tensor], list[Tensor | None], list[Tensor]]:
        """Online branch of each view: (backbone features, SEM logits or None, projector input).

        The backbone sees one view at a time; the embedder runs once on all views with batch
        norm per view (:func:`semprobe.pretrain.views.forward_views`). ``taus`` gives each view's
        SEM temperature (default: ``spec.tau`` for all).
        """
        feats = [self.encoder.backbone(v) for v in views]
        if self.encoder.embedder is None:
            return feats, [None] * len(feats), feats
        logits = forward_views(self.encoder.embedder, feats)
        spec = self.spec
        taus = [spec.tau] * len(views) if taus is None else list(taus)
        reps = [
            sem_softmax(z, spec.num_simplices, spec.vocab, t)
            for z, t in zip(logits, taus, strict=True)
        ]
        return feats, list(logits), reps

    # --- to implement ------------------------------------------------------------------------
    def ssl_step(self, view1: Tensor, view2: Tensor) -> SSLOutput:
        """The method's loss on a pair of views."""
        raise NotImplementedError

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

    # --- optimisation -----------------------------------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resume on this run's schedule: its length, not the saved run's.

        Lightning restores the scheduler's attributes after :meth:`configure_optimizers` has
        built it for this run; the saved ``warmup_epochs`` and ``max_epochs`` (in steps) would
        then end a run resumed with more epochs, or on another number of processes, at learning
        rate 0 once it passed the old end. The position (``last_epoch``) and the base rates are
        kept. Resuming the same configuration is unchanged (both lengths are equal).
        """
        for state in checkpoint.get("lr_schedulers") or []:
            for key in _SCHEDULE_LENGTHS:
                state.pop(key, None)

    def configure_optimizers(self) -> Any:
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = self.trainer.num_training_batches  # inf when no epoch limit was set
        steps_per_epoch = int(per_epoch) if math.isfinite(per_epoch) else total
        groups = parameter_groups(self.ssl_networks(), self.classifiers, self.optim)
        optimizer = build_optimizer(groups, self.optim)
        scheduler = build_scheduler(
            optimizer, total, steps_per_epoch, self.optim.warmup_epochs, self.optim.min_lr_ratio
        )
        schedule = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}


class MomentumMethod(SSLMethod):
    """Base of the methods with an EMA (momentum) branch: BYOL, MoCo v2+, DINO.

    Parameters
    ----------
    spec, num_classes, optim, online_taus:
        See :class:`SSLMethod`.
    base_momentum, final_momentum:
        EMA momentum at the first and last step; cosine schedule in between (BYOL, Sec. 3.2).
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
        super().__init__(spec, num_classes, optim, online_taus)
        self.base_momentum = base_momentum
        self.final_momentum = final_momentum
        self.momentum_encoder = momentum_networks(self.encoder)

    @classmethod
    def options(cls, cfg: PretrainConfig) -> dict[str, Any]:
        momenta = {"base_momentum": cfg.base_momentum, "final_momentum": cfg.final_momentum}
        return super().options(cfg) | momenta

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

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, EMA) module pairs; subclasses add their heads."""
        return [(self.encoder, self.momentum_encoder)]

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
