"""VICReg and VICReg + SEM.

Bardes et al., "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised
Learning" (ICLR 2022, arXiv 2105.04906), in the form of the SEM authors' ``solo/methods/
sdvicreg.py``: projector of three Linear layers (2048-2048-2048, batch norm and ReLU after the
first two), loss ``25 * invariance + 25 * variance + 1 * covariance`` with solo-learn's terms
(the variance term is the *sum* of both views' hinge losses), and the SEM layer (Lavoie et al.,
ICLR 2023, arXiv 2204.00616) at ``tau_online`` on view 1 and ``tau_target`` on view 2; the
authors apply tau_online to both views, which is the default ``tau_target = tau_online = 1``.

Head and loss are lightly's (``VICRegProjectionHead``, ``VICRegLoss``). lightly's variance term
is the *mean* of the two views' terms, so its weight is passed doubled to give solo-learn's loss.
Under DDP lightly gathers the projections of every process for the variance and covariance
terms (``gather_distributed=True``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from lightly.loss import VICRegLoss
from lightly.models.modules.heads import VICRegProjectionHead
from torch import Tensor, nn

from semprobe.model import ModelSpec
from semprobe.pretrain.base import SSLMethod, SSLOutput
from semprobe.pretrain.config import PretrainConfig
from semprobe.pretrain.views import forward_views


class VICReg(SSLMethod):
    """VICReg (+SEM when ``spec`` has L, V).

    Parameters
    ----------
    spec, num_classes, **common:
        See :class:`semprobe.pretrain.base.SSLMethod`.
    proj_hidden_dim, proj_output_dim:
        Projector widths (2048, 2048).
    sim_loss_weight, var_loss_weight, cov_loss_weight:
        Weights of the invariance, variance and covariance terms (25, 25, 1).
    """

    VIEW_TAUS: ClassVar[tuple[str, str]] = ("online", "target")

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 2048,
        sim_loss_weight: float = 25.0,
        var_loss_weight: float = 25.0,
        cov_loss_weight: float = 1.0,
        **common: Any,
    ) -> None:
        super().__init__(spec, num_classes, **common)
        self.projector = VICRegProjectionHead(
            self.rep_dim, proj_hidden_dim, proj_output_dim, num_layers=3
        )
        self.criterion = VICRegLoss(
            lambda_param=sim_loss_weight,
            mu_param=2 * var_loss_weight,  # lightly averages the two views' variance terms
            nu_param=cov_loss_weight,
            gather_distributed=True,
        )

    @classmethod
    def options(cls, cfg: PretrainConfig) -> dict[str, Any]:
        weights = {
            "sim_loss_weight": cfg.sim_loss_weight,
            "var_loss_weight": cfg.var_loss_weight,
            "cov_loss_weight": cfg.cov_loss_weight,
        }
        return super().options(cfg) | weights

    def ssl_networks(self) -> list[nn.Module]:
        return [*super().ssl_networks(), self.projector]

    def ssl_step(self, view1: Tensor, view2: Tensor) -> SSLOutput:
        feats, logits, reps = self.online([view1, view2], self.view_taus())
        z1, z2 = forward_views(self.projector, reps)
        loss = self.criterion(z1, z2)
        return SSLOutput(loss, feats[0], logits[0], {"vicreg_loss": loss.detach()})
