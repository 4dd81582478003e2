"""DINO and DINO + SEM.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (ICCV 2021, arXiv
2104.14294), in the form of the SEM authors' ``solo/methods/sddino.py`` with two 32x32 crops:
student and EMA teacher heads of three Linear layers with GELU (2048-2048-256, no batch norm),
L2 normalisation, then a weight-normalised layer to 4096 prototypes whose norm is fixed and whose
weights are frozen for the first epoch; cross-entropy between the teacher's centred, sharpened
softmax and the student's softmax at temperature 0.1 over the two cross-view pairs; teacher
temperature 0.04 -> 0.07 linearly over the first 50 epochs, then 0.07; centre momentum 0.9; EMA
0.9995 -> 1.0. The SEM layer (Lavoie et al., ICLR 2023, arXiv 2204.00616) runs at ``tau_online``
in the student and ``tau_target`` in the teacher (1 / 1).

Head and loss are lightly's (``DINOProjectionHead``, ``DINOLoss``); the loss's centre is a
buffer, so it is in every checkpoint, and its teacher-temperature schedule is a function of the
epoch, which the checkpoint's loop state restores. Under DDP the centre update averages the
teacher outputs of every process (lightly's ``center_mean``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightly.loss import DINOLoss
from lightly.models.modules.heads import DINOProjectionHead
from lightly.models.utils import deactivate_requires_grad
from torch import Tensor, nn

from semprobe.model import ModelSpec
from semprobe.pretrain.base import MomentumMethod, SSLOutput
from semprobe.pretrain.config import PretrainConfig
from semprobe.pretrain.views import forward_views


def dino_head(*args: Any, **kwargs: Any) -> DINOProjectionHead:
    """lightly's head, built without the deprecation warning of ``nn.utils.weight_norm``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*weight_norm.*", category=FutureWarning)
        return DINOProjectionHead(*args, **kwargs)


def run_head(head: DINOProjectionHead, inputs: Sequence[Tensor]) -> list[Tensor]:
    """``[head(x) for x in inputs]`` with batch norm (if any) per view, one product per layer."""
    hidden = forward_views(head.layers, inputs)
    out = head.last_layer(F.normalize(torch.cat(hidden), dim=-1, p=2))
    return list(out.split([len(x) for x in inputs]))


class DINO(MomentumMethod):
    """DINO (+SEM when ``spec`` has L, V).

    Parameters
    ----------
    spec, num_classes, **common:
        See :class:`semprobe.pretrain.base.MomentumMethod`.
    proj_hidden_dim, proj_output_dim:
        Head hidden and bottleneck widths (2048, 256).
    num_prototypes:
        Output width of the head (4096).
    temperature:
        Student temperature (0.1).
    teacher_temperature, warmup_teacher_temperature, warmup_teacher_epochs:
        Teacher temperature after and at the start of its linear warm-up, and the warm-up length
        in epochs (0.07, 0.04, 50).
    freeze_prototypes_epochs:
        Epochs during which the head's last layer does not move (1).
    """

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 256,
        num_prototypes: int = 4096,
        temperature: float = 0.1,
        teacher_temperature: float = 0.07,
        warmup_teacher_temperature: float = 0.04,
        warmup_teacher_epochs: int = 50,
        freeze_prototypes_epochs: int = 1,
        **common: Any,
    ) -> None:
        super().__init__(spec, num_classes, **common)
        sizes = {
            "input_dim": self.rep_dim,
            "hidden_dim": proj_hidden_dim,
            "bottleneck_dim": proj_output_dim,
            "output_dim": num_prototypes,
            "freeze_last_layer": freeze_prototypes_epochs,
        }
        self.head = dino_head(**sizes)
        # A weight-normalised layer cannot be deep-copied: the teacher is a second head that
        # starts from the student's weights.
        self.momentum_head = dino_head(**sizes)
        self.momentum_head.load_state_dict(self.head.state_dict())
        deactivate_requires_grad(self.momentum_head)
        self.criterion = DINOLoss(
            output_dim=num_prototypes,
            warmup_teacher_temp=warmup_teacher_temperature,
            teacher_temp=teacher_temperature,
            warmup_teacher_temp_epochs=warmup_teacher_epochs,
            student_temp=temperature,
            center_momentum=0.9,
        )

    @classmethod
    def options(cls, cfg: PretrainConfig) -> dict[str, Any]:
        extra = {
            "num_prototypes": cfg.num_prototypes,
            "temperature": cfg.temperature,
            "teacher_temperature": cfg.teacher_temperature,
            "warmup_teacher_temperature": cfg.warmup_teacher_temperature,
            "warmup_teacher_epochs": cfg.warmup_teacher_epochs,
            "freeze_prototypes_epochs": cfg.freeze_prototypes_epochs,
        }
        return super().options(cfg) | extra

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [*super().momentum_pairs(), (self.head, self.momentum_head)]

    def ssl_networks(self) -> list[nn.Module]:
        return [*super().ssl_networks(), self.head]

    def teacher_temperature_at(self, epoch: int) -> float:
        """The teacher temperature of ``epoch`` (lightly's schedule, as the loss applies it)."""
        loss = self.criterion
        if epoch < loss.warmup_teacher_temp_epochs:
            return float(loss.teacher_temp_schedule[epoch])
        return float(loss.teacher_temp)

    def ssl_step(self, view1: Tensor, view2: Tensor) -> SSLOutput:
        views = [view1, view2]
        feats, logits, reps = self.online(views)
        student = run_head(self.head, reps)
        with torch.no_grad():
            teacher = run_head(self.momentum_head, self.target(views))
        temperature = self.teacher_temperature_at(self.current_epoch)
        entropy = self.teacher_entropy(teacher, temperature)  # before the loss moves the centre
        loss = self.criterion(teacher, student, epoch=self.current_epoch)
        metrics = {
            "dino_loss": loss.detach(),
            # H(teacher, student) - H(teacher): what the student can still learn of the teacher.
            "dino_kl": loss.detach() - entropy,
            "teacher_entropy": entropy,
            "teacher_temperature": torch.tensor(temperature),
        }
        return SSLOutput(loss, feats[0], logits[0], metrics)

    @torch.no_grad()
    def teacher_entropy(self, teacher: Sequence[Tensor], temperature: float) -> Tensor:
        """Mean entropy of the teacher's centred, sharpened softmax (the loss's targets)."""
        probs = F.softmax((torch.stack(list(teacher)) - self.criterion.center) / temperature, -1)
        return -(probs * probs.clamp_min(1e-30).log()).sum(-1).mean()

    def on_after_backward(self) -> None:
        self.head.cancel_last_layer_gradients(self.current_epoch)
