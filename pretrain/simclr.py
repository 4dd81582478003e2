"""SimCLR and SimCLR + SEM.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations" (ICML 2020,
arXiv 2002.05709), in the form of the SEM authors' ``solo/methods/sdsimclr.py``: projector
Linear-ReLU-Linear (2048-256, no batch norm), NT-Xent at temperature 0.2 over the 2N views of
the batch (every other view is a negative), with the SEM layer of Lavoie et al. (ICLR 2023,
arXiv 2204.00616) at ``tau_online`` on view 1 and ``tau_target`` on view 2 (0.17 / 0.78).

Head and loss are lightly's (``SimCLRProjectionHead`` without batch norm, ``NTXentLoss``); under
DDP the loss gathers the projections of every process (``gather_distributed=True``), so the
negatives are the whole global batch, as in solo-learn.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lightly.loss import NTXentLoss
from lightly.models.modules.heads import SimCLRProjectionHead
from torch import Tensor, nn

from semprobe.model import ModelSpec
from semprobe.pretrain.base import SSLMethod, SSLOutput
from semprobe.pretrain.config import PretrainConfig
from semprobe.pretrain.views import forward_views


class SimCLR(SSLMethod):
    """SimCLR (+SEM when ``spec`` has L, V).

    Parameters
    ----------
    spec, num_classes, **common:
        See :class:`semprobe.pretrain.base.SSLMethod`.
    proj_hidden_dim, proj_output_dim:
        Projector widths (2048, 256).
    temperature:
        NT-Xent temperature (0.2).
    """

    VIEW_TAUS: ClassVar[tuple[str, str]] = ("online", "target")

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 256,
        temperature: float = 0.2,
        **common: Any,
    ) -> None:
        super().__init__(spec, num_classes, **common)
        self.projector = SimCLRProjectionHead(
            self.rep_dim, proj_hidden_dim, proj_output_dim, num_layers=2, batch_norm=False
        )
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=True)

    @classmethod
    def options(cls, cfg: PretrainConfig) -> dict[str, Any]:
        return super().options(cfg) | {"temperature": cfg.temperature}

    def ssl_networks(self) -> list[nn.Module]:
        return [*super().ssl_networks(), self.projector]

    def ssl_step(self, view1: Tensor, view2: Tensor) -> SSLOutput:
        feats, logits, reps = self.online([view1, view2], self.view_taus())
        z1, z2 = forward_views(self.projector, reps)
        loss = self.criterion(z1, z2)
        return SSLOutput(loss, feats[0], logits[0], {"nce_loss": loss.detach()})
