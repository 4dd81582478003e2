"""The data layer: every ``--dataset`` value the tools accept, behind one small interface.

Dataset names
-------------
``cifar10``, ``cifar100``
    torchvision's datasets, downloaded into ``root`` when missing unless ``download=False``.
``imagefolder:PATH``
    any folder of images in class folders: ``train/`` and ``test/`` or ``val/`` (see
    :mod:`semprobe.folders`); any size or mode; an optional ``superclasses.csv``
    (``class,superclass``) beside them gives superclasses.
``imagenet:PATH``
    ImageNet-1k or a subset, in the usual layouts, flat ``val/`` included (see
    :mod:`semprobe.imagenet`).
``synthetic[:train=N,test=M,seed=S]``
    the built-in hierarchical dataset of :mod:`semprobe.synthetic` (defaults 50 / 10 / 0 images
    per class), which needs no network.

Each opens as a :class:`~semprobe.images.LabeledImages`. A new kind of dataset is one call of
:func:`register_dataset` with its opener.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semprobe import synthetic
from semprobe.errors import DatasetError
from semprobe.images import LabeledImages, array_loader
from semprobe.transforms import NORMALIZATIONS, EvalTransform

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "DATASETS",
    "SPLITS",
    "LabeledImages",
    "default_root",
    "describe_transform",
    "eval_transform",
    "open_dataset",
    "register_dataset",
]

SPLITS = ("train", "val", "test")
# The statistics `semprobe pretrain` normalises with (pretrain/augment.py imports them): those
# of CIFAR-10's training set, as in solo-learn's CIFAR-10 pipeline. The SEM authors evaluate with
# slightly different constants (the `authors-cifar` preset of semprobe.transforms).
CIFAR_MEAN, CIFAR_STD = NORMALIZATIONS["cifar10"]

# opener(argument after "kind:", split, root, download) -> LabeledImages
Opener = Callable[[str, str, "Path | None", bool], LabeledImages]


@dataclass(frozen=True)
class DatasetKind:
    """One entry of the dataset registry.

    Attributes
    ----------
    name: the part before ``:``.
    usage: how a user writes it, for messages (``imagefolder:PATH``).
    opener: see :data:`Opener`.
    argument: ``none``, ``optional`` or ``required`` (the part after ``:``).
    """

    name: str
    usage: str
    opener: Opener
    argument: str = "none"


_REGISTRY: dict[str, DatasetKind] = {}


def register_dataset(name: str, opener: Opener, usage: str | None = None, argument: str = "none"):
    """Make ``--dataset name[:ARG]`` open with ``opener`` (see :class:`DatasetKind`).

    Examples
    --------
    >>> def tiny(arg, split, root, download):
    ...     blank = lambda i: Image.new("RGB", (2, 2))
    ...     return LabeledImages("tiny", split, np.zeros(2), ["a"], blank)
    >>> register_dataset("tiny", tiny)
    >>> len(open_dataset("tiny"))
    2
    >>> del _REGISTRY["tiny"]
    """
    if argument not in ("none", "optional", "required"):
        raise ValueError(f"argument must be none, optional or required, got {argument!r}")
    _REGISTRY[name] = DatasetKind(name, usage or name, opener, argument)


def dataset_names() -> tuple[str, ...]:
    """How each registered dataset is written, for help texts and messages."""
    return tuple(kind.usage for kind in _REGISTRY.values())


def default_root() -> Path:
    """Where torchvision datasets are stored: ``$SEMPROBE_DATA`` or ``~/.cache/semprobe/data``."""
    env = os.environ.get("SEMPROBE_DATA")
    return Path(env) if env else Path.home() / ".cache" / "semprobe" / "data"


def eval_transform(image_size: int = 32) -> EvalTransform:
    """semprobe's own evaluation transform at ``image_size`` (resized and cropped unless 32).

    Extraction chooses its transform per model (:func:`semprobe.transforms.choose_transform`);
    this is the one for semprobe's checkpoints on 32 px data.
    """
    mean, std = NORMALIZATIONS["cifar10"]
    if image_size == 32:
        return EvalTransform(None, None, "cifar10", mean, std)
    return EvalTransform(image_size, image_size, "cifar10", mean, std)


def describe_transform(transform: Callable[..., Any] | None) -> str:
    """A stable text form of a transform, recorded in cache manifests."""
    if transform is None:
        return "none"
    if isinstance(transform, EvalTransform):
        return transform.describe()
    return " ".join(repr(transform).split())


def _parse_options(text: str, allowed: dict[str, int]) -> dict[str, int]:
    options = dict(allowed)
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in allowed:
            raise DatasetError(
                f"bad synthetic option {item!r}; use synthetic:train=N,test=M,seed=S"
            )
        try:
            options[key] = int(value)
        except ValueError:
            raise DatasetError(
                f"synthetic option {key} must be an integer, got {value!r}"
            ) from None
        if options[key] < (0 if key == "seed" else 1):
            raise DatasetError(f"synthetic option {key} out of range: {value}")
    return options


def _no_val(name: str, split: str) -> str:
    if split == "val":
        raise DatasetError(f"{name} has no val split; use train or test")
    return split


def _open_synthetic(options: str, split: str, root: Path | None, download: bool) -> LabeledImages:
    opts = _parse_options(options, {"train": 50, "test": 10, "seed": 0})
    split = _no_val("synthetic", split)
    images, labels = synthetic.make_split(split, opts[split], seed=opts["seed"])
    key = f"synthetic:train={opts['train']},test={opts['test']},seed={opts['seed']}"
    return LabeledImages(
        key,
        split,
        labels,
        synthetic.class_names(),
        array_loader(images),
        synthetic.superclass_of(),
        native_size=synthetic.IMAGE_SIZE,
    )


def _open_cifar(name: str, split: str, root: Path | None, download: bool) -> LabeledImages:
    from torchvision import datasets

    split = _no_val(name, split)
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    folder = root or default_root()
    try:
        ds = cls(str(folder), train=split == "train", download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        hint = "" if download else " (downloading was disabled by --no-download)"
        raise DatasetError(f"{name} not found in {folder}{hint}: {exc}") from None
    except OSError as exc:  # no network while downloading
        raise DatasetError(f"could not download {name} into {folder}: {exc}") from None
    superclass_of = None
    if name == "cifar100":
        from semprobe.wordnet import cifar100_coarse

        superclass_of = cifar100_coarse()
    return LabeledImages(
        name,
        split,
        np.asarray(ds.targets),
        ds.classes,
        array_loader(ds.data),
        superclass_of,
        native_size=32,
    )


def _open_imagefolder(path: str, split: str, root: Path | None, download: bool) -> LabeledImages:
    from semprobe.folders import open_imagefolder

    return open_imagefolder(path, split)


def _open_imagenet(path: str, split: str, root: Path | None, download: bool) -> LabeledImages:
    from semprobe.imagenet import open_imagenet

    return open_imagenet(path, split)


register_dataset("cifar10", lambda _, split, root, dl: _open_cifar("cifar10", split, root, dl))
register_dataset("cifar100", lambda _, split, root, dl: _open_cifar("cifar100", split, root, dl))
register_dataset("imagefolder", _open_imagefolder, "imagefolder:PATH", "required")
register_dataset("imagenet", _open_imagenet, "imagenet:PATH", "required")
register_dataset("synthetic", _open_synthetic, "synthetic", "optional")


def _register_evaluation_sets() -> None:
    """torchvision's transfer datasets, ``classfolder:PATH``: :mod:`semprobe.evaluation_data`."""
    from semprobe.evaluation_data import register

    register(register_dataset, default_root)


_register_evaluation_sets()
DATASETS = dataset_names()


def open_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    transform: Callable[[Image.Image], Any] | None = None,
) -> LabeledImages:
    """Open one split of a dataset by its ``--dataset`` name.

    Parameters
    ----------
    name:
        See the module docstring.
    split:
        ``train``, ``test`` or ``val`` (folders with a ``val/``; ``test`` falls back to it).
    root:
        Storage folder for torchvision datasets (default :func:`default_root`).
    download:
        Download cifar10/cifar100 when missing.
    transform:
        Applied to each PIL image (e.g. :func:`eval_transform`).

    Raises
    ------
    DatasetError
        Unknown name or split, a missing folder, a dataset absent offline.

    Examples
    --------
    >>> ds = open_dataset("synthetic:train=1,test=1", "test")
    >>> len(ds), ds.native_size, ds.split, ds.open_args["name"]
    (100, 32, 'test', 'synthetic:train=1,test=1')
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose train or test")
    kind_name, sep, rest = name.partition(":")
    kind = _REGISTRY.get(kind_name)
    if (
        kind is None
        or (kind.argument == "none" and sep)
        or (kind.argument == "required" and not rest)
    ):
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(dataset_names())}")
    ds = kind.opener(rest, split, Path(root) if root else None, download)
    ds.transform = transform
    ds.open_args = {"name": name, "split": split, "root": str(root) if root else None}
    return ds
