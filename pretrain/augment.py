"""Two-view augmentations for 32x32 pre-training (lightly's transforms, CIFAR settings).

BYOL (Grill et al. 2020, Table 6) is asymmetric; the CIFAR version used by solo-learn and the SEM
authors (``--brightness 0.4 --contrast 0.4 --saturation 0.2 --hue 0.1 --gaussian_prob 0.0 0.0
--solarization_prob 0.0 0.2 --crop_size 32``) drops the Gaussian blur, which destroys 32x32
images:

* both views: random resized crop to 32 (scale 0.08-1), horizontal flip (0.5), colour jitter
  0.4/0.4/0.2/0.1 with probability 0.8, grayscale with probability 0.2;
* solarisation with probability 0 (view 1) and 0.2 (view 2).

The authors' ``sdbarlow`` and ``sddino`` scripts use the same asymmetric pair as BYOL.

MoCo v2+ is symmetric: the same with saturation 0.4 and no solarisation (the authors' ``sdmoco``
script; solo-learn's ``symmetric_weak`` CIFAR augmentations without blur).

SimCLR and SwAV (``sdsimclr``, ``sdswav``: ``--brightness 0.8 --contrast 0.8 --saturation 0.8
--hue 0.2 --gaussian_prob 0.0 0.0``) are symmetric with the stronger jitter 0.8/0.8/0.8/0.2 and
no solarisation: lightly's ``SimCLRTransform`` without blur (for SwAV, its two 32x32 crops in
place of lightly's multi-crop ``SwaVTransform``, as the authors train it).

VICReg (``sdvicreg``: ``--min_scale 0.2 --solarization_prob 0.1``) crops from 20 % of the image,
jitters 0.4/0.4/0.2/0.1 and solarises either view with probability 0.1: lightly's
``VICRegTransform`` without blur.

All views are normalised with the CIFAR statistics that every 32x32 model here uses.
"""

from __future__ import annotations

from lightly.transforms.byol_transform import (
    BYOLTransform,
    BYOLView1Transform,
    BYOLView2Transform,
)
from lightly.transforms.moco_transform import MoCoV2Transform
from lightly.transforms.multi_view_transform import MultiViewTransform
from lightly.transforms.simclr_transform import SimCLRTransform
from lightly.transforms.vicreg_transform import VICRegTransform

from semprobe.data import CIFAR_MEAN, CIFAR_STD

NORMALIZE = {"mean": list(CIFAR_MEAN), "std": list(CIFAR_STD)}


def two_view_transform(method: str, image_size: int = 32) -> MultiViewTransform:
    """The two-view transform of ``method``: PIL image -> ``[view1, view2]`` tensors.

    Parameters
    ----------
    method:
        One of :data:`semprobe.pretrain.config.METHODS`.
    image_size:
        Side of the square crops.
    """
    if method in ("byol", "barlowtwins", "dino"):
        common = {"input_size": image_size, "gaussian_blur": 0.0, "normalize": NORMALIZE}
        return BYOLTransform(
            BYOLView1Transform(solarization_prob=0.0, **common),  # type: ignore[arg-type]
            BYOLView2Transform(solarization_prob=0.2, **common),  # type: ignore[arg-type]
        )
    if method == "mocov2plus":
        return MoCoV2Transform(
            input_size=image_size,
            cj_sat=0.4,
            min_scale=0.08,
            gaussian_blur=0.0,
            normalize=NORMALIZE,
        )
    if method in ("simclr", "swav"):
        return SimCLRTransform(
            input_size=image_size, min_scale=0.08, gaussian_blur=0.0, normalize=NORMALIZE
        )
    if method == "vicreg":
        return VICRegTransform(
            input_size=image_size,
            cj_strength=1.0,
            cj_bright=0.4,
            cj_contrast=0.4,
            cj_sat=0.2,
            cj_hue=0.1,
            min_scale=0.2,
            solarize_prob=0.1,
            gaussian_blur=0.0,
            normalize=NORMALIZE,
        )
    raise ValueError(f"unknown method {method!r}")
