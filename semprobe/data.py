"""The data layer: every ``--dataset`` value the tools accept, behind one small interface.

Dataset names
-------------
``cifar10``, ``cifar100``
    torchvision's datasets, downloaded into ``root`` when missing unless ``download=False``.
``imagefolder:PATH``
    any torchvision ``ImageFolder`` tree with ``train/`` and ``test/``; class names are the folder
    names; an optional ``superclasses.csv`` (``class,superclass``) beside them gives superclasses.
``synthetic[:train=N,test=M,seed=S]``
    the built-in hierarchical dataset of :mod:`semprobe.synthetic` (defaults 50 / 10 / 0 images
    per class), which needs no network.

Each opens as a :class:`LabeledImages`: a torch ``Dataset`` of ``(transform(PIL image), label)``
with class names, superclass names where known, and raw ``uint8`` images for thumbnails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from semprobe import synthetic
from semprobe.errors import DatasetError

SPLITS = ("train", "test")
DATASETS = ("cifar10", "cifar100", "imagefolder:PATH", "synthetic")
# solo-learn's CIFAR statistics, which the SEM authors' checkpoints were trained with; we use them
# for every 32x32 dataset so that our and their models see identically normalised inputs.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def default_root() -> Path:
    """Where torchvision datasets are stored: ``$SEMPROBE_DATA`` or ``~/.cache/semprobe/data``."""
    env = os.environ.get("SEMPROBE_DATA")
    return Path(env) if env else Path.home() / ".cache" / "semprobe" / "data"


def eval_transform(image_size: int = 32) -> T.Compose:
    """The deterministic transform used for feature extraction (resize only if needed)."""
    steps: list[Any] = []
    if image_size != 32:
        steps += [T.Resize(image_size), T.CenterCrop(image_size)]
    steps += [T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)]
    return T.Compose(steps)


def describe_transform(transform: Callable[..., Any] | None) -> str:
    """A stable text form of a transform, recorded in cache manifests."""
    return "none" if transform is None else " ".join(repr(transform).split())


class LabeledImages(Dataset):
    """Images with integer labels, class names and (optionally) superclass names.

    Parameters
    ----------
    key:
        Canonical dataset identity, e.g. ``cifar100`` or ``imagefolder:/data/x`` (used in caches).
    split:
        ``train`` or ``test``.
    labels:
        Integer class index per image.
    class_names:
        Name of each class index.
    load:
        ``load(i)`` returns image ``i`` as an RGB PIL image.
    superclass_of:
        Class name -> superclass name, or None if the dataset has no known grouping.
    transform:
        Applied to each PIL image by ``__getitem__``.
    """

    def __init__(
        self,
        key: str,
        split: str,
        labels: np.ndarray,
        class_names: Sequence[str],
        load: Callable[[int], Image.Image],
        superclass_of: dict[str, str] | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.key = key
        self.split = split
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = list(class_names)
        self.superclass_of = superclass_of
        self.transform = transform
        self._load = load

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self._load(index)
        return (self.transform(image) if self.transform else image), int(self.labels[index])

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as ``uint8`` ``(H, W, 3)``, untransformed (for thumbnails)."""
        return np.asarray(self._load(index).convert("RGB"))

    def superclass_labels(self) -> list[str] | None:
        """Superclass of each class index, or None when unknown."""
        if self.superclass_of is None:
            return None
        return [self.superclass_of[name] for name in self.class_names]


def _array_loader(images: np.ndarray) -> Callable[[int], Image.Image]:
    return lambda i: Image.fromarray(images[i])


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


def _open_synthetic(options: str, split: str) -> LabeledImages:
    opts = _parse_options(options, {"train": 50, "test": 10, "seed": 0})
    images, labels = synthetic.make_split(split, opts[split], seed=opts["seed"])
    key = f"synthetic:train={opts['train']},test={opts['test']},seed={opts['seed']}"
    return LabeledImages(
        key,
        split,
        labels,
        synthetic.class_names(),
        _array_loader(images),
        synthetic.superclass_of(),
    )


def _open_cifar(name: str, split: str, root: Path | None, download: bool) -> LabeledImages:
    from torchvision import datasets

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
        name, split, np.asarray(ds.targets), ds.classes, _array_loader(ds.data), superclass_of
    )


def _open_imagefolder(path: str, split: str) -> LabeledImages:
    from torchvision import datasets

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"ImageFolder root {root} does not exist")
    missing = [s for s in SPLITS if not (root / s).is_dir()]
    if missing:
        raise DatasetError(f"ImageFolder root {root} has no {' or '.join(missing)}/ directory")
    try:
        ds = datasets.ImageFolder(str(root / split))
    except (FileNotFoundError, OSError) as exc:
        raise DatasetError(f"cannot read ImageFolder {root / split}: {exc}") from None
    superclass_of = None
    csv_path = root / "superclasses.csv"
    if csv_path.exists():
        from semprobe.wordnet import read_superclass_csv

        superclass_of = read_superclass_csv(csv_path, ds.classes)
    samples = ds.samples

    def load(i: int) -> Image.Image:
        with Image.open(samples[i][0]) as img:
            return img.convert("RGB")

    return LabeledImages(
        f"imagefolder:{root.resolve()}",
        split,
        np.asarray(ds.targets),
        ds.classes,
        load,
        superclass_of,
    )


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
        ``train`` or ``test``.
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
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose train or test")
    kind, _, rest = name.partition(":")
    if kind == "synthetic":
        ds = _open_synthetic(rest, split)
    elif kind in ("cifar10", "cifar100") and not rest:
        ds = _open_cifar(kind, split, Path(root) if root else None, download)
    elif kind == "imagefolder" and rest:
        ds = _open_imagefolder(rest, split)
    else:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    ds.transform = transform
    return ds
