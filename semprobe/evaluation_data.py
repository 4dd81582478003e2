"""The evaluation datasets: torchvision's transfer datasets and flat class-folder evaluation sets.

:func:`semprobe.data.open_dataset` hands every name it does not know itself to
:func:`open_split`, so these names work wherever a ``--dataset`` does.

Transfer datasets (the paper's Table 3, after Kornblith et al., CVPR 2019), with torchvision's
classes and splits:

=================  ===========================================  ===============================
name               torchvision class                            train / test
=================  ===========================================  ===============================
``food101``        ``Food101``                                  ``train`` / ``test``
``sun397``         ``SUN397`` (no split in torchvision)         50 / 50 images per class, seeded
``dtd``            ``DTD`` (partition 1)                        ``train`` / ``test`` (+ ``val``)
``pets``           ``OxfordIIITPet`` (categories)               ``trainval`` / ``test``
``flowers102``     ``Flowers102``                               ``train`` / ``test`` (+ ``val``)
``caltech101``     ``Caltech101`` (no split in torchvision)     30 images per class / the rest
``stanford_cars``  ``StanfordCars``                             ``train`` / ``test``
=================  ===========================================  ===============================

(``cifar10`` and ``cifar100`` are :mod:`semprobe.data`'s own.) Each is downloaded into ``root``
when missing unless ``download`` is false.

``classfolder:PATH`` is an evaluation-only set: ``PATH/<class>/<image>`` with no split folders,
the layout of ImageNet-R, ImageNet-A, ImageNet-V2 (class folders ``0`` ... ``999``) and of each
``<corruption>/<severity>/`` of ImageNet-C; it has one split, ``test``.

:func:`register` adds these names to :mod:`semprobe.data`'s registry (this module cannot
import :mod:`semprobe.data`, which imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from semprobe.errors import DatasetError
from semprobe.folders import class_folders, file_images, list_class_images
from semprobe.images import LabeledImages, to_rgb

#: torchvision's class name and its ``split`` argument for each of our splits (None: no split).
TORCHVISION: dict[str, tuple[str, dict[str, str] | None]] = {
    "food101": ("Food101", {"train": "train", "test": "test"}),
    "sun397": ("SUN397", None),
    "dtd": ("DTD", {"train": "train", "val": "val", "test": "test"}),
    "pets": ("OxfordIIITPet", {"train": "trainval", "test": "test"}),
    "flowers102": ("Flowers102", {"train": "train", "val": "val", "test": "test"}),
    "caltech101": ("Caltech101", None),
    "stanford_cars": ("StanfordCars", {"train": "train", "test": "test"}),
}
#: Datasets without a split in torchvision: training images per class of our seeded split.
SPLIT_SIZES = {"sun397": (50, 50), "caltech101": (30, None)}
SPLIT_SEED = 0
NAMES = (*TORCHVISION, "classfolder:PATH")


def _labels_of(ds: Any) -> list[int]:
    for attr in ("_labels", "y", "targets"):
        if hasattr(ds, attr):
            return [int(v) for v in getattr(ds, attr)]
    return [int(label) for _, label in ds._samples]


def _class_names(ds: Any, n: int) -> list[str]:
    names = getattr(ds, "classes", None) or getattr(ds, "categories", None)
    return [str(c) for c in names] if names else [f"class_{i:03d}" for i in range(n)]


def seeded_split(labels: np.ndarray, split: str, train: int, test: int | None) -> np.ndarray:
    """Rows of ``split`` in a per-class split: ``train`` images per class for training, then
    ``test`` (all the rest when None) for testing; seeded, sorted.

    Examples
    --------
    >>> labels = np.repeat([0, 1], 5)
    >>> seeded_split(labels, "train", 2, None).tolist(), len(seeded_split(labels, "test", 2, None))
    ([2, 4, 6, 9], 6)
    """
    rng = np.random.default_rng(SPLIT_SEED)
    chosen = []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        part = rows[:train] if split == "train" else rows[train:]
        chosen.append(part if split == "train" or test is None else part[:test])
    return np.sort(np.concatenate(chosen))


def open_torchvision(name: str, split: str, root: Path, download: bool) -> LabeledImages:
    """One split of a torchvision transfer dataset (see the module docstring)."""
    from torchvision import datasets

    class_name, splits = TORCHVISION[name]
    if splits is not None and split not in splits:
        raise DatasetError(f"{name} has no {split} split; it has {', '.join(splits)}")
    if splits is None and split not in ("train", "test"):
        raise DatasetError(f"{name} has no {split} split; it has train and test")
    hint = "" if download else " (downloading was disabled by --no-download)"
    if not download and not root.is_dir():
        raise DatasetError(f"{name} not found: {root} does not exist{hint}")
    if not download and name == "caltech101" and not (root / "caltech101").is_dir():
        # torchvision's Caltech101 creates its folder even when it then finds nothing.
        raise DatasetError(f"{name} not found in {root}{hint}: no caltech101/ folder")
    kwargs: dict[str, Any] = {"download": download}
    if splits is not None:
        kwargs["split"] = splits[split]
    try:
        ds = getattr(datasets, class_name)(str(root), **kwargs)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"{name} not found in {root}{hint}: {message}") from None
    except OSError as exc:  # no network while downloading, or an unreadable folder
        raise DatasetError(f"could not open or download {name} into {root}: {exc}") from None
    labels = np.asarray(_labels_of(ds), dtype=np.int64)
    names = _class_names(ds, int(labels.max()) + 1 if len(labels) else 0)
    rows = np.arange(len(labels))
    if splits is None:
        rows = seeded_split(labels, split, *SPLIT_SIZES[name])

    def load(i: int) -> Any:
        return to_rgb(ds[int(rows[i])][0])

    return LabeledImages(name, split, labels[rows], names, load)


def open_classfolder(path: str, split: str) -> LabeledImages:
    """``classfolder:PATH``: ``PATH/<class>/<image>``, an evaluation set with one split (test)."""
    root = Path(path).expanduser().absolute()
    if not root.is_dir():
        raise DatasetError(f"class-folder root {root} does not exist")
    if split != "test":
        raise DatasetError(
            f"classfolder:{root} is an evaluation set with one split, test (asked for {split})"
        )
    classes = class_folders(root)
    samples = list_class_images(root, classes)
    return file_images(f"classfolder:{root.resolve()}", split, root, samples, classes, None)


Registrar = Callable[..., None]


def register(register_dataset: Registrar, default_root: Callable[[], Path]) -> None:
    """Add every name of this module to :func:`semprobe.data.register_dataset`'s registry."""

    def torchvision_opener(name: str) -> Callable[..., LabeledImages]:
        def opener(_: str, split: str, root: Path | None, download: bool) -> LabeledImages:
            return open_torchvision(name, split, root or default_root(), download)

        return opener

    for name in TORCHVISION:
        register_dataset(name, torchvision_opener(name))
    register_dataset(
        "classfolder",
        lambda path, split, root, download: open_classfolder(path, split),
        "classfolder:PATH",
        "required",
    )
