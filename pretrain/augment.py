"""Two-view augmentations for 32x32 pre-training (lightly's transforms, CIFAR settings).

BYOL (Grill et al. 2020, Table 6) is asymmetric; the CIFAR version used by solo-learn and the SEM
authors (``--brightness 0.4 --contrast 0.4 --saturation 0.2 --hue 0.1 --gaussian_prob 0.0 0.0
--solarization_prob 0.0 0.2 --crop_size 32``) drops the Gaussian blur, which destroys 32x32
images:

* both views: random resized crop to 32 (scale 0.08-1), horizontal flip (0.5), colour jitter
  0.4/0.4/0.2/0.1 with probability 0.8, grayscale with probability 0.2;
* solarisation with probability 0 (view 1) and 0.2 (view 2).

MoCo v2+ is symmetric: the same with saturation 0.4 and no solarisation (the authors' ``sdmoco``
script; solo-learn's ``symmetric_weak`` CIFAR augmentations without blur).

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

from semprobe.data import CIFAR_MEAN, CIFAR_STD

NORMALIZE = {"mean": list(CIFAR_MEAN), "std": list(CIFAR_STD)}


def two_view_transform(method: str, image_size: int = 32) -> MultiViewTransform:
    """The two-view transform of ``method``: PIL image -> ``[view1, view2]`` tensors.

    Parameters
    ----------
    method:
        ``byol`` (asymmetric) or ``mocov2plus`` (symmetric).
    image_size:
        Side of the square crops.
    """
    if method == "byol":
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
    raise ValueError(f"unknown method {method!r}")
