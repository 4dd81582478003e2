"""Evaluation transforms: the deterministic image -> tensor step of feature extraction.

Two presets, chosen from the checkpoint's stem and the dataset (:func:`choose_transform`):

* **CIFAR-like**: a model with the CIFAR stem (3x3 stride-1 convolution, no max-pool) or the
  small CNN sees 32 px images; 32 px datasets (``cifar10``, ``cifar100``, ``synthetic``) are not
  resized, other folders are resized (shorter side) to 32 and centre-cropped.
* **ImageNet-like**: a model with the ImageNet stem (7x7 stride-2 convolution and max-pool) sees
  224 px centre crops of images resized to 256, the evaluation of torchvision's references and of
  solo-learn (``T_val`` in ``solo/utils/classification_dataloader.py``).

Normalisation follows what the model was trained or evaluated with (:data:`NORMALIZATIONS`): the
SEM authors' evaluation constants for their checkpoints, semprobe's pretraining statistics for
ours. ``--image-size``, ``--resize`` and ``--normalize`` override each part; every choice is
printed and recorded in the feature cache's key.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from semprobe.errors import SemprobeError

log = logging.getLogger("semprobe")

# name -> (mean, std) per RGB channel, in [0, 1] units.
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # CIFAR-10 training-set statistics (solo-learn's CIFAR-10 pretraining); `semprobe pretrain`
    # normalises with them on every dataset (pretrain/augment.py reads semprobe.data.CIFAR_MEAN).
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    # CIFAR-100 training-set statistics (the SEM authors' CIFAR-100 pretraining augmentations).
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    # torchvision's ImageNet statistics (its models' weights.transforms()).
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # The SEM authors' evaluation (main_linear's T_val) on CIFAR-10 and CIFAR-100 alike.
    "authors-cifar": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
    # The SEM authors' (solo-learn's) ImageNet pipelines: note the red std 0.228, not 0.229.
    "authors-imagenet": ((0.485, 0.456, 0.406), (0.228, 0.224, 0.225)),
}
CIFAR_SIZE = 32
IMAGENET_SIZE = 224
# ImageNet evaluation resizes to 256 before the 224 crop: a crop ratio of 0.875.
CROP_RATIO = 224 / 256


@dataclass(frozen=True)
class EvalTransform:
    """Resize (shorter side), centre-crop, ``ToTensor`` and normalise: a picklable callable.

    Attributes
    ----------
    image_size:
        Side of the centre crop, or None for no crop.
    resize:
        Shorter side after resizing (bilinear, antialiased), or None for no resize. With neither,
        images are fed as stored (and must then share one size).
    normalize:
        Preset name of :data:`NORMALIZATIONS`, or ``custom``.
    mean, std:
        Per-channel normalisation.

    Examples
    --------
    >>> from PIL import Image
    >>> t = EvalTransform(224, 256, "imagenet", *NORMALIZATIONS["imagenet"])
    >>> t(Image.new("RGB", (500, 375))).shape
    torch.Size([3, 224, 224])
    >>> resize, crop, normalise = t.describe().split(", ", 2)
    >>> resize, crop
    ('resize 256 (bilinear)', 'centre-crop 224')
    >>> normalise
    'normalise imagenet mean (0.485, 0.456, 0.406) std (0.229, 0.224, 0.225)'
    """

    image_size: int | None
    resize: int | None
    normalize: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    _compose: Any = field(default=None, compare=False, repr=False)

    def steps(self) -> Any:
        """The torchvision ``Compose`` this transform applies."""
        from torchvision import transforms as T

        steps: list[Any] = []
        if self.resize is not None:
            steps.append(T.Resize(self.resize, interpolation=T.InterpolationMode.BILINEAR))
        if self.image_size is not None:
            steps.append(T.CenterCrop(self.image_size))
        steps += [T.ToTensor(), T.Normalize(self.mean, self.std)]
        return T.Compose(steps)

    def __call__(self, image: Any) -> Any:
        if self._compose is None:
            object.__setattr__(self, "_compose", self.steps())
        return self._compose(image)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_compose": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def describe(self) -> str:
        """One line, stable across versions of torchvision: recorded in cache keys."""
        parts = [f"resize {self.resize} (bilinear)" if self.resize else "no resize"]
        if self.image_size is not None:
            parts.append(f"centre-crop {self.image_size}")
        parts.append(
            f"normalise {self.normalize} mean {_triple(self.mean)} std {_triple(self.std)}"
        )
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"EvalTransform({self.describe()})"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for manifests and run directories."""
        return {
            "image_size": self.image_size,
            "resize": self.resize,
            "normalize": self.normalize,
            "mean": list(self.mean),
            "std": list(self.std),
            "description": self.describe(),
        }


def _triple(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def parse_normalize(text: str) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """A ``--normalize`` value: a preset name, ``MEAN,STD`` or ``M1,M2,M3,S1,S2,S3``.

    Returns
    -------
    (name, mean, std)
        ``name`` is the preset's, or ``custom``.

    Examples
    --------
    >>> parse_normalize("authors-cifar")[2]
    (0.247, 0.243, 0.261)
    >>> parse_normalize("0.5,0.25")
    ('custom', (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    """
    name = text.strip().lower()
    if name in NORMALIZATIONS:
        mean, std = NORMALIZATIONS[name]
        return name, mean, std
    try:
        values = [float(v) for v in name.split(",")]
    except ValueError:
        values = []
    if len(values) not in (2, 6):
        raise SemprobeError(
            f"--normalize {text!r}: give a preset ({', '.join(NORMALIZATIONS)}), MEAN,STD or "
            "three means and three standard deviations separated by commas"
        )
    if len(values) == 2:
        values = [values[0]] * 3 + [values[1]] * 3
    mean, std = tuple(values[:3]), tuple(values[3:])
    if not all(math.isfinite(v) for v in values) or min(std) <= 0:
        raise SemprobeError(
            f"--normalize {text!r}: means must be finite and standard deviations positive"
        )
    return "custom", mean, std


def parse_resize(value: int | str | None) -> int | None:
    """``--resize``: a side in pixels, ``none`` (no resize, stored as 0), or None (the preset's).

    Examples
    --------
    >>> parse_resize("none"), parse_resize("256"), parse_resize(None)
    (0, 256, None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() == "none":
            return 0
        try:
            value = int(value)
        except ValueError:
            raise SemprobeError(
                f"--resize must be a number of pixels or none, got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SemprobeError(f"--resize must be a number of pixels or none, got {value!r}")
    return value


def stem_input_size(spec: Any) -> int:
    """The input size a backbone was built for: 224 for the ImageNet stem, 32 otherwise."""
    if spec.backbone.startswith("resnet") and not spec.cifar_stem:
        return IMAGENET_SIZE
    return CIFAR_SIZE


def describe_stem(spec: Any) -> str:
    """The stem in words, for messages."""
    if not spec.backbone.startswith("resnet"):
        return f"{spec.backbone} (no ResNet stem, made for 32 px)"
    if spec.cifar_stem:
        return (
            f"{spec.backbone} with the CIFAR stem (3x3 stride-1 convolution, no max-pool, made "
            "for 32 px)"
        )
    return (
        f"{spec.backbone} with the ImageNet stem (7x7 stride-2 convolution and max-pool, made for "
        "224 px)"
    )


def default_normalization(spec: Any) -> str:
    """The preset a model expects: the one its checkpoint records, else semprobe's ``cifar10``."""
    return getattr(spec, "normalize", "") or "cifar10"


def choose_transform(
    spec: Any,
    native_size: int | None,
    image_size: int | None = None,
    resize: int | None = None,
    normalize: str | None = None,
) -> EvalTransform:
    """The evaluation transform for a model (its :class:`~semprobe.model.ModelSpec`) on a dataset.

    Parameters
    ----------
    spec:
        The model's spec: its stem sets the default input size (see :func:`stem_input_size`) and
        its ``normalize`` the default normalisation.
    native_size:
        Side of the dataset's images when all share it (32 for CIFAR), or None (a folder).
    image_size, resize, normalize:
        Overrides: crop side; shorter side after resizing (0: no resize, and no crop unless
        ``image_size`` is given); a preset name or ``MEAN,STD`` (see :func:`parse_normalize`).

    Returns
    -------
    EvalTransform

    Examples
    --------
    >>> from semprobe.model import ModelSpec
    >>> choose_transform(ModelSpec("resnet50", cifar_stem=False), None).describe()[:40]
    'resize 256 (bilinear), centre-crop 224, '
    >>> choose_transform(ModelSpec("resnet18"), 32).describe()[:9]
    'no resize'
    """
    if image_size is not None and (isinstance(image_size, bool) or image_size < 1):
        raise SemprobeError(f"--image-size must be a positive number of pixels, got {image_size}")
    if normalize is None and default_normalization(spec) not in NORMALIZATIONS:
        raise SemprobeError(
            f"the checkpoint records the normalisation {spec.normalize!r}, which is not a preset "
            f"({', '.join(NORMALIZATIONS)}); pass --normalize"
        )
    name, mean, std = parse_normalize(normalize or default_normalization(spec))
    size = image_size or stem_input_size(spec)
    if resize == 0:  # --resize none: as stored, centre-cropped only if --image-size asks
        return EvalTransform(image_size, None, name, mean, std)
    if resize is None and image_size is None and native_size == size:
        return EvalTransform(None, None, name, mean, std)  # CIFAR-like data at the model's size
    if resize is None:
        resize = round(size / CROP_RATIO) if size > 2 * CIFAR_SIZE else size
    if resize < size:
        raise SemprobeError(
            f"--resize {resize} is smaller than the {size} px crop (--image-size): the crop would "
            "be padded with black"
        )
    return EvalTransform(size, resize, name, mean, std)


def stem_mismatch(spec: Any, input_size: int) -> str | None:
    """A warning when ``input_size`` px inputs do not suit the model's stem, else None.

    Examples
    --------
    >>> from semprobe.model import ModelSpec
    >>> stem_mismatch(ModelSpec("resnet50", cifar_stem=False), 32)[:40]
    'the checkpoint is a resnet50 with the Im'
    >>> stem_mismatch(ModelSpec("resnet50", cifar_stem=False), 224) is None
    True
    """
    if not spec.backbone.startswith("resnet"):
        return None
    expected = stem_input_size(spec)
    if expected == IMAGENET_SIZE and input_size >= 112:
        return None
    if expected == CIFAR_SIZE and input_size <= 2 * CIFAR_SIZE:
        return None
    return (
        f"the checkpoint is a {describe_stem(spec)} but the images are fed at {input_size} px; "
        f"its features at this size are not those it was trained to give (pass --image-size "
        f"{expected} for its own input size)"
    )


def warn(message: str) -> None:
    """A warning on stderr (``logging``'s last-resort handler prints it when none is set)."""
    log.warning("warning: %s", message)
