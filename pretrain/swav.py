"""SwAV and SwAV + SEM.

Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments"
(NeurIPS 2020, arXiv 2006.09882), in the form of the SEM authors' ``solo/methods/sdswav.py``
with two 32x32 crops: projector Linear-BN-ReLU-Linear (2048-128), L2-normalised projections
scored against 3000 unit-norm prototypes, swapped prediction at temperature 0.1 of the codes
that 3 Sinkhorn-Knopp iterations (epsilon 0.05) compute, prototypes frozen for the first 2 epochs,
and a queue of the last 3840 projections of each view added to the Sinkhorn input from epoch 50.
The SEM layer (Lavoie et al., ICLR 2023, arXiv 2204.00616) runs at ``tau_online`` on view 1 and
``tau_target`` on view 2 (0.85 / 1.5). The embedder is trained with the rest of the network (the
authors' ``sdswav`` leaves it out of its optimiser's parameter list).

Head, prototypes and loss are lightly's (``SwaVProjectionHead``, ``SwaVPrototypes``, ``SwaVLoss``
with its distributed Sinkhorn). The prototypes are renormalised before each step and frozen by
dropping their gradients, as the authors do (lightly's step-based freezing toggles
``requires_grad``, which DDP does not allow mid-run).

The queue is kept here (:class:`SwAV` buffers ``queue`` and ``queue_filled``, saved in every
checkpoint): under DDP each step adds the projections of *all* processes, so every process holds
the same global queue, and each process hands the Sinkhorn its own 1/world share of it. The
all-reduced Sinkhorn then sees every queued row exactly once, which is what the authors' per-process
queues of ``queue_size / world`` rows give, and the saved queue does not depend on the number of
processes. Only filled rows are used (the authors' queue starts late enough to be full).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from lightly.loss import SwaVLoss
from lightly.models.modules.heads import SwaVProjectionHead, SwaVPrototypes
from lightly.models.utils import concat_all_gather
from lightly.utils import dist
from torch import Tensor, nn

from semprobe.model import ModelSpec
from semprobe.pretrain.base import SSLMethod, SSLOutput
from semprobe.pretrain.config import PretrainConfig
from semprobe.pretrain.mocov2plus import check_queue
from semprobe.pretrain.views import forward_views


class SwAV(SSLMethod):
    """SwAV (+SEM when ``spec`` has L, V).

    Parameters
    ----------
    spec, num_classes, **common:
        See :class:`semprobe.pretrain.base.SSLMethod`.
    proj_hidden_dim, proj_output_dim:
        Projector widths (2048, 128).
    num_prototypes:
        Number of prototypes (3000).
    temperature:
        Temperature of the swapped prediction (0.1).
    queue_size:
        Queued projections per view (3840); 0 for no queue.
    queue_start_epoch:
        First epoch whose Sinkhorn input includes the queue (50).
    freeze_prototypes_epochs:
        Epochs during which the prototypes do not move (2).
    """

    VIEW_TAUS: ClassVar[tuple[str, str]] = ("online", "target")
    EXCLUDE_BIAS_NORM: ClassVar[bool] = False  # sdswav.sh has no --exclude_bias_n_norm
    MIN_LR_RATIO: ClassVar[float] = 0.001  # --min_lr 0.0006 at --lr 0.6

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 128,
        num_prototypes: int = 3000,
        temperature: float = 0.1,
        queue_size: int = 3840,
        queue_start_epoch: int = 50,
        freeze_prototypes_epochs: int = 2,
        **common: Any,
    ) -> None:
        super().__init__(spec, num_classes, **common)
        self.projector = SwaVProjectionHead(self.rep_dim, proj_hidden_dim, proj_output_dim)
        self.prototypes = SwaVPrototypes(proj_output_dim, num_prototypes)
        self.criterion = SwaVLoss(
            temperature=temperature,
            sinkhorn_iterations=3,
            sinkhorn_epsilon=0.05,
            sinkhorn_gather_distributed=True,
        )
        self.queue_size = queue_size
        self.queue_start_epoch = queue_start_epoch
        self.freeze_prototypes_epochs = freeze_prototypes_epochs
        self.queue: Tensor
        self.queue_filled: Tensor
        self.register_buffer("queue", torch.zeros(2, queue_size, proj_output_dim))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))

    @classmethod
    def options(cls, cfg: PretrainConfig) -> dict[str, Any]:
        extra = {
            "num_prototypes": cfg.num_prototypes,
            "temperature": cfg.temperature,
            "queue_size": cfg.queue_size,
            "queue_start_epoch": cfg.queue_start_epoch,
            "freeze_prototypes_epochs": cfg.freeze_prototypes_epochs,
        }
        return super().options(cfg) | extra

    def ssl_networks(self) -> list[nn.Module]:
        return [*super().ssl_networks(), self.projector, self.prototypes]

    def queue_outputs(self) -> list[Tensor] | None:
        """Prototype scores of this process's share of the filled queue, or None when unused."""
        filled = int(self.queue_filled)
        if not self.queue_size or self.current_epoch < self.queue_start_epoch or not filled:
            return None
        share = self.queue[:, :filled][:, dist.rank() :: dist.world_size()]
        with torch.no_grad():
            return [self.prototypes(share[i]) for i in range(2)]

    @torch.no_grad()
    def enqueue(self, z1: Tensor, z2: Tensor) -> None:
        """Put the projections of every process in front of the queue; the oldest fall off."""
        z = torch.stack([z1, z2]).detach()
        if dist.world_size() > 1:
            z = torch.stack([concat_all_gather(z[i].contiguous()) for i in range(2)])
        self.queue.copy_(torch.cat([z, self.queue], dim=1)[:, : self.queue_size])
        self.queue_filled.fill_(min(int(self.queue_filled) + z.shape[1], self.queue_size))

    def ssl_step(self, view1: Tensor, view2: Tensor) -> SSLOutput:
        if self.queue_size:
            check_queue(self.queue_size, view1.shape[0])
        with torch.no_grad():
            self.prototypes.normalize()
        feats, logits, reps = self.online([view1, view2], self.view_taus())
        z1, z2 = (F.normalize(z, dim=1) for z in forward_views(self.projector, reps))
        p1, p2 = self.prototypes(torch.cat([z1, z2])).split([len(z1), len(z2)])
        loss = self.criterion([p1, p2], [], self.queue_outputs())
        if self.queue_size:
            self.enqueue(z1, z2)
        return SSLOutput(loss, feats[0], logits[0], {"swav_loss": loss.detach()})

    def on_after_backward(self) -> None:
        # Frozen prototypes take no step at all (no gradient, hence no decay or momentum either).
        if self.current_epoch < self.freeze_prototypes_epochs:
            for p in self.prototypes.parameters():
                p.grad = None
