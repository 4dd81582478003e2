"""Barlow Twins and Barlow Twins + SEM.

Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction" (ICML 2021,
arXiv 2103.03230), in the form of the SEM authors' ``solo/methods/sdbt.py``: projector of three
Linear layers (2048-2048-2048, batch norm and ReLU after the first two), cross-correlation of the
batch-normalised projections of the two views, loss
``scale_loss * (sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2)`` with lambda 0.0051 and
scale 0.1, and the SEM layer (Lavoie et al., ICLR 2023, arXiv 2204.00616) at ``tau_online`` on
view 1 and ``tau_target`` on view 2 (1 / 0.99).

Head and loss are lightly's (``BarlowTwinsProjectionHead``, ``BarlowTwinsLoss``, which has no
scale factor: it is applied here). Under DDP the cross-correlation is averaged over the
processes (``gather_distributed=True``), as solo-learn does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lightly.loss import BarlowTwinsLoss
from lightly.models.modules.heads import BarlowTwinsProjectionHead
from torch import Tensor, nn

from semprobe.model import ModelSpec
from semprobe.pretrain.base import SSLMethod, SSLOutput
from semprobe.pretrain.config import PretrainConfig
from semprobe.pretrain.views import forward_views


class BarlowTwins(SSLMethod):
    """Barlow Twins (+SEM when ``spec`` has L, V).

    Parameters
    ----------
    spec, num_classes, **common:
        See :class:`semprobe.pretrain.base.SSLMethod`.
    proj_hidden_dim, proj_output_dim:
        Projector widths (2048, 2048).
    barlow_lambda:
        Weight of the off-diagonal (redundancy) terms (0.0051).
    scale_loss:
        Factor of the whole loss (0.1).
    """

    VIEW_TAUS: ClassVar[tuple[str, str]] = ("online", "target")

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 2048,
        barlow_lambda: float = 0.0051,
        scale_loss: float = 0.1,
        **common: Any,
    ) -> None:
        super().__init__(spec, num_classes, **common)
        self.projector = BarlowTwinsProjectionHead(self.rep_dim, proj_hidden_dim, proj_output_dim)
        self.criterion = BarlowTwinsLoss(lambda_param=barlow_lambda, gather_distributed=True)
        self.scale_loss = scale_loss

    @classmethod
    def options(cls, cfg: PretrainConfig) -> dict[str, Any]:
        extra = {"barlow_lambda": cfg.barlow_lambda, "scale_loss": cfg.scale_loss}
        return super().options(cfg) | extra

    def ssl_networks(self) -> list[nn.Module]:
        return [*super().ssl_networks(), self.projector]

    def ssl_step(self, view1: Tensor, view2: Tensor) -> SSLOutput:
        feats, logits, reps = self.online([view1, view2], self.view_taus())
        z1, z2 = forward_views(self.projector, reps)
        loss = self.scale_loss * self.criterion(z1, z2)
        return SSLOutput(loss, feats[0], logits[0], {"barlow_loss": loss.detach()})
