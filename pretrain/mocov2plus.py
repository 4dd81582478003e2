"""MoCo v2+ and MoCo v2+ + SEM.

He et al., "Momentum Contrast" (CVPR 2020, arXiv 1911.05722) and Chen et al., "Improved Baselines
with Momentum Contrastive Learning" (arXiv 2003.04297), in solo-learn's symmetric "v2+" form that
the SEM authors extended (``solo/methods/sdmocov2plus.py``): projector Linear-ReLU-Linear
(2048-256, no batch norm), InfoNCE at temperature 0.2 against a queue of 32768 momentum keys, one
queue per view, loss ``(nce(q1, k2, queue_2) + nce(q2, k1, queue_1)) / 2``. Like solo-learn,
there is no shuffled batch norm in the key encoder (use ``--sync-batchnorm`` on several GPUs).

The loss and the queues are lightly's ``NTXentLoss`` with its memory bank, whose
``gather_distributed=True`` fills each queue with the keys of *all* processes under DDP
(``lightly.models.utils.concat_all_gather``), as MoCo does. Two things are adjusted here:

* lightly registers the queue and its pointer as non-persistent buffers, so they would be missing
  from checkpoints and a resumed run would restart from a random queue; :func:`persist_queue`
  re-registers them as persistent.
* lightly's bank drops the keys that do not fit before the end of the queue when it wraps; the
  config therefore requires ``queue_size`` to be a multiple of the keys added per step (as MoCo
  asserts), which :meth:`MoCoV2Plus.ssl_step` checks against the real world size.
"""

from __future__ import annotations

from typing import Any

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules.heads import MoCoProjectionHead
from lightly.models.modules.memory_bank import MemoryBankModule
from lightly.utils import dist
from torch import Tensor, nn

from semprobe.errors import SemprobeError
from semprobe.model import ModelSpec
from semprobe.pretrain.base import MomentumMethod, SSLOutput, momentum_networks
from semprobe.pretrain.config import PretrainConfig
from semprobe.pretrain.views import forward_views


def persist_queue(bank: MemoryBankModule) -> MemoryBankModule:
    """Make lightly's memory bank save its queue and pointer in ``state_dict``."""
    bank.register_buffer("bank", bank.bank, persistent=True)
    bank.register_buffer("bank_ptr", bank.bank_ptr, persistent=True)
    return bank


def check_queue(queue_size: int, batch_size: int) -> None:
    """Refuse a queue that the keys of one step (batch x processes) do not tile exactly."""
    keys_per_step = batch_size * dist.world_size()
    if queue_size % keys_per_step:
        raise SemprobeError(
            f"queue_size {queue_size} is not a multiple of the {keys_per_step} keys "
            "added per step (batch size x processes)"
        )


def contrastive_loss(temperature: float, queue_size: int, dim: int) -> NTXentLoss:
    """InfoNCE against a persistent, DDP-gathered queue of ``queue_size`` keys of width ``dim``."""
    loss = NTXentLoss(
        temperature=temperature, memory_bank_size=(queue_size, dim), gather_distributed=True
    )
    persist_queue(loss.memory_bank)
    return loss


class MoCoV2Plus(MomentumMethod):
    """MoCo v2+ (+SEM when ``spec`` has L, V).

    Parameters
    ----------
    spec, num_classes, **common:
        See :class:`semprobe.pretrain.base.MomentumMethod`.
    proj_hidden_dim, proj_output_dim:
        Projector widths (2048, 256).
    queue_size:
        Keys per queue (32768).
    temperature:
        InfoNCE temperature (0.2).
    """

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 256,
        queue_size: int = 32768,
        temperature: float = 0.2,
        **common: Any,
    ) -> None:
        super().__init__(spec, num_classes, **common)
        self.queue_size = queue_size
        self.projector = MoCoProjectionHead(self.rep_dim, proj_hidden_dim, proj_output_dim)
        self.momentum_projector = momentum_networks(self.projector)
        # criterion_1 holds keys of view 2 (negatives for queries of view 1), and vice versa.
        self.criterion_1 = contrastive_loss(temperature, queue_size, proj_output_dim)
        self.criterion_2 = contrastive_loss(temperature, queue_size, proj_output_dim)

    @classmethod
    def options(cls, cfg: PretrainConfig) -> dict[str, Any]:
        return super().options(cfg) | {"queue_size": cfg.queue_size, "temperature": cfg.temperature}

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [*super().momentum_pairs(), (self.projector, self.momentum_projector)]

    def ssl_networks(self) -> list[nn.Module]:
        return [*super().ssl_networks(), self.projector]

    def ssl_step(self, view1: Tensor, view2: Tensor) -> SSLOutput:
        check_queue(self.queue_size, view1.shape[0])
        # Batch norm sees one view at a time (as in solo-learn); see pretrain.views.
        feats, logits, reps = self.online([view1, view2])
        q1, q2 = forward_views(self.projector, reps)
        with torch.no_grad():
            k1, k2 = forward_views(self.momentum_projector, self.target([view1, view2]))
        # NTXentLoss normalises q and k, reads the queue, then enqueues k when q needs gradients.
        loss = (self.criterion_1(q1, k2) + self.criterion_2(q2, k1)) / 2
        return SSLOutput(loss, feats[0], logits[0], {"nce_loss": loss.detach()})
