"""Backbones: torchvision ResNets (with the CIFAR stem option) and a small CNN for CPU demos.

The backbone maps an image batch to a feature vector; its classification head is replaced by
``nn.Identity`` so that parameter names match solo-learn's and the SEM authors' ``backbone.*``
keys (torchvision names, ``fc`` removed).
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision import models

from semprobe.errors import SemprobeError

BACKBONES = ("resnet18", "resnet50", "small_cnn")


class SmallCNN(nn.Module):
    """A four-block CNN (about 0.3 M parameters) that trains at thousands of images/s on a CPU.

    Not meant to reach published accuracies: it exists so that the whole pipeline (pretraining,
    extraction, probes) can be run and tested on a laptop in minutes.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 4]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = chans[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.features(x)).flatten(1)


def apply_cifar_stem(resnet: models.ResNet) -> None:
    """Replace the ImageNet stem by the CIFAR one used by solo-learn and the SEM authors.

    A 3x3 convolution with stride 1 and padding 2 (not 1: that is what the authors' checkpoints
    were trained with) and no max-pooling, so 32x32 inputs keep their resolution.
    """
    resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    resnet.maxpool = nn.Identity()


def build_backbone(name: str, cifar_stem: bool = True) -> tuple[nn.Module, int]:
    """Build a randomly initialised backbone.

    Parameters
    ----------
    name:
        One of ``resnet18``, ``resnet50``, ``small_cnn``.
    cifar_stem:
        For ResNets, use the 32x32 stem (see :func:`apply_cifar_stem`). Ignored by ``small_cnn``.

    Returns
    -------
    (module, feature_dim)
        The backbone (head removed) and the width of its output.
    """
    if name == "small_cnn":
        cnn = SmallCNN()
        return cnn, cnn.out_dim
    if name not in ("resnet18", "resnet50"):
        raise SemprobeError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    resnet = getattr(models, name)(weights=None)
    feat_dim = resnet.fc.in_features
    resnet.fc = nn.Identity()
    if cifar_stem:
        apply_cifar_stem(resnet)
    return resnet, feat_dim
