"""BYOL and BYOL + SEM.

Grill et al., "Bootstrap Your Own Latent" (NeurIPS 2020, arXiv 2006.07733), with the SEM layer of
Lavoie et al. (ICLR 2023, arXiv 2204.00616) between backbone and projector when the spec has one.
Projector 4096-256 and predictor 4096 (lightly's BYOL heads: Linear, BatchNorm, ReLU, Linear);
loss ``2 - 2 cos(q(z_1), z'_2)`` summed over both directions, as solo-learn and the SEM authors'
``sdbyol`` compute it.
"""

from __future__ import annotations

from typing import Any

from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules.heads import BYOLPredictionHead, BYOLProjectionHead
from torch import Tensor, nn

from semprobe.model import ModelSpec
from semprobe.pretrain.base import MomentumMethod, SSLOutput, momentum_networks
from semprobe.pretrain.config import PretrainConfig
from semprobe.pretrain.views import forward_views


class BYOL(MomentumMethod):
    """BYOL (+SEM when ``spec`` has L, V).

    Parameters
    ----------
    spec, num_classes, **common:
        See :class:`semprobe.pretrain.base.MomentumMethod`.
    proj_hidden_dim, proj_output_dim:
        Projector widths (4096, 256).
    pred_hidden_dim:
        Predictor hidden width (4096).
    """

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int,
        proj_hidden_dim: int = 4096,
        proj_output_dim: int = 256,
        pred_hidden_dim: int = 4096,
        **common: Any,
    ) -> None:
        super().__init__(spec, num_classes, **common)
        self.projector = BYOLProjectionHead(self.rep_dim, proj_hidden_dim, proj_output_dim)
        self.momentum_projector = momentum_networks(self.projector)
        self.predictor = BYOLPredictionHead(proj_output_dim, pred_hidden_dim, proj_output_dim)
        self.criterion = NegativeCosineSimilarity()

    @classmethod
    def options(cls, cfg: PretrainConfig) -> dict[str, Any]:
        return super().options(cfg) | {"pred_hidden_dim": cfg.pred_hidden_dim}

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [*super().momentum_pairs(), (self.projector, self.momentum_projector)]

    def ssl_networks(self) -> list[nn.Module]:
        return [*super().ssl_networks(), self.projector, self.predictor]

    def byol_loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        """``2 - 2 cos(prediction, target)``, averaged over the batch."""
        return 2 + 2 * self.criterion(prediction, target.detach())

    def ssl_step(self, view1: Tensor, view2: Tensor) -> SSLOutput:
        # Batch norm sees one view at a time (as in solo-learn); see pretrain.views.
        feats, logits, reps = self.online([view1, view2])
        p1, p2 = forward_views(self.predictor, forward_views(self.projector, reps))
        t1, t2 = forward_views(self.momentum_projector, self.target([view1, view2]))
        loss = self.byol_loss(p1, t2) + self.byol_loss(p2, t1)
        return SSLOutput(loss, feats[0], logits[0], {"byol_loss": loss.detach()})
