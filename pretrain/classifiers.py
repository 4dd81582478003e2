"""Online linear classifiers: a running read-out of how linearly separable the features are.

As in the SEM authors' code (``solo/methods/sdmocov2plus.py``), linear heads are trained jointly
with the self-supervised loss on *detached* representations, so they never shape the encoder:
one on the backbone features and, for SEM models, one on the SEM output at each of a few
temperatures (the paper evaluates the SEM output at several tau, Section 4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semprobe.sem import sem_softmax
from semprobe.validation import check_tau


def tau_label(tau: float) -> str:
    """A metric-name-safe spelling of ``tau``: ``0.01`` -> ``0.01``, ``1.0`` -> ``1``."""
    return f"{tau:g}"


class OnlineClassifiers(nn.Module):
    """Linear heads on detached backbone features and on the SEM output at several taus.

    Parameters
    ----------
    feat_dim:
        Width of the backbone features.
    num_classes:
        Number of labels.
    num_simplices, vocab:
        L and V of the SEM layer; 0 for a model without SEM (then only the backbone head).
    taus:
        Temperatures at which the SEM output is read.
    """

    def __init__(
        self,
        feat_dim: int,
        num_classes: int,
        num_simplices: int = 0,
        vocab: int = 0,
        taus: Sequence[float] = (0.01, 0.1, 1.0),
    ) -> None:
        super().__init__()
        self.num_simplices = num_simplices
        self.vocab = vocab
        self.taus = [check_tau(t) for t in taus] if num_simplices else []
        self.backbone_head = nn.Linear(feat_dim, num_classes)
        self.sem_heads = nn.ModuleList(
            nn.Linear(num_simplices * vocab, num_classes) for _ in self.taus
        )

    def forward(
        self, feats: Tensor, logits: Tensor | None, labels: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Cross-entropy summed over heads, and each head's top-1 training accuracy.

        Parameters
        ----------
        feats:
            Backbone features (detached here).
        logits:
            Pre-softmax SEM logits, or None for a model without SEM.
        labels:
            Class indices; ``-1`` marks unlabeled samples.

        Returns
        -------
        (loss, metrics)
            Metric names are ``acc_backbone`` and ``acc_sem_tau<tau>``.
        """
        inputs: dict[str, tuple[nn.Module, Tensor]] = {
            "backbone": (self.backbone_head, feats.detach().float())
        }
        if logits is not None:
            for tau, head in zip(self.taus, self.sem_heads, strict=True):
                sem = sem_softmax(logits.detach().float(), self.num_simplices, self.vocab, tau)
                inputs[f"sem_tau{tau_label(tau)}"] = (head, sem)
        loss = feats.new_zeros((), dtype=torch.float32)
        metrics: dict[str, Tensor] = {}
        labelled = labels >= 0
        # Sums over labelled samples divided by their count (at least 1): a batch without labels
        # adds 0, not the NaN of a mean over nothing.
        count = labelled.sum().clamp_min(1)
        for name, (head, x) in inputs.items():
            out = head(x).float()
            loss = loss + F.cross_entropy(out, labels, ignore_index=-1, reduction="sum") / count
            hits = (out.argmax(dim=1) == labels) & labelled
            metrics[f"acc_{name}"] = hits.sum() / count
        return loss, metrics
