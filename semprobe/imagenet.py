"""``imagenet:PATH``: ImageNet-1k (or a subset such as ImageNet-100) in its usual layouts.

``PATH`` holds ``train/<wnid>/*.JPEG`` and ``val/``; the ``test`` and ``val`` splits both read
``val/``. Classes are the train split's WordNet ids, sorted (the order of torchvision's
``ImageFolder`` and of solo-learn), so WordNet superclasses need no mapping. ``val/`` may be:

* class folders, ``val/<wnid>/*.JPEG`` (torchvision's ``ImageNet`` and most preparation scripts);
* flat, ``val/ILSVRC2012_val_00000001.JPEG``..., labelled by either
  - Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``; the first token of the
    prediction string is the wnid), in ``PATH`` or up to two folders above ``val/``'s parent; or
  - the ILSVRC2012 devkit (``ILSVRC2012_devkit_t12/`` or ``ILSVRC2012_devkit_t12.tar.gz`` in
    ``PATH``): ``data/ILSVRC2012_validation_ground_truth.txt`` gives the ILSVRC2012 id of image
    ``i`` on line ``i`` and ``data/meta.mat`` maps ids to wnids.

Kaggle's whole download can be given as ``PATH`` too (``PATH/ILSVRC/Data/CLS-LOC/{train,val}``).
Validation images of classes absent from ``train/`` (an ImageNet-100 train split beside the full
validation set) are left out, with a warning that counts them.

torchvision's devkit parser is private to ``parse_devkit_archive``, which also checks the
archive's MD5 and writes into the data folder, so the two devkit files are read here.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path

from semprobe.errors import DatasetError
from semprobe.folders import class_folders, file_images, list_class_images, read_superclasses
from semprobe.images import LabeledImages

log = logging.getLogger("semprobe")

KAGGLE_SOLUTION = "LOC_val_solution.csv"
DEVKIT = "ILSVRC2012_devkit_t12"
_GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"
_META = "data/meta.mat"
_VAL_NUMBER = re.compile(r"_(\d{8})$")


def data_root(path: Path) -> Path:
    """The folder holding ``train/`` and ``val/``: ``path`` or Kaggle's ``ILSVRC/Data/CLS-LOC``."""
    kaggle = path / "ILSVRC" / "Data" / "CLS-LOC"
    return kaggle if kaggle.is_dir() else path


def _image_files(folder: Path) -> list[str]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

    return sorted(
        entry.path
        for entry in os.scandir(folder)
        if entry.is_file() and has_file_allowed_extension(entry.name, IMG_EXTENSIONS)
    )


def read_kaggle_solution(path: Path) -> dict[str, str]:
    """``LOC_val_solution.csv`` as image id (file stem) -> wnid."""
    labels: dict[str, str] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                tokens = (row.get("PredictionString") or "").split()
                if not row.get("ImageId") or not tokens:
                    raise DatasetError(f"{path}: malformed row {row}")
                labels[row["ImageId"]] = tokens[0]
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    return labels


def _devkit_file(devkit: Path, member: str) -> io.BytesIO:
    if devkit.is_dir():
        return io.BytesIO((devkit / member).read_bytes())
    with tarfile.open(devkit) as archive:
        extracted = archive.extractfile(f"{DEVKIT}/{member}")
        if extracted is None:
            raise KeyError(member)
        return io.BytesIO(extracted.read())


def read_devkit(devkit: Path) -> dict[int, str]:
    """The devkit's validation labels as image number (1-based) -> wnid."""
    import scipy.io

    try:
        meta = scipy.io.loadmat(_devkit_file(devkit, _META), squeeze_me=True)["synsets"]
        truth = _devkit_file(devkit, _GROUND_TRUTH).read().decode("ascii").split()
        # Leaf synsets (no children) are the 1,000 classes; ids are 1-based.
        wnid_of = {
            int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in meta if int(s["num_children"]) == 0
        }
        return {number: wnid_of[int(value)] for number, value in enumerate(truth, start=1)}
    except (OSError, KeyError, ValueError, IndexError, tarfile.TarError) as exc:
        raise DatasetError(f"cannot read the ImageNet devkit {devkit}: {exc}") from None


def _find_labels(path: Path, val: Path) -> tuple[dict[str, str], Path]:
    """The ground truth of a flat ``val/``: file stem -> wnid, and the file it came from."""
    for folder in dict.fromkeys([path, val.parent, val.parent.parent, val.parent.parent.parent]):
        if (folder / KAGGLE_SOLUTION).is_file():
            return read_kaggle_solution(folder / KAGGLE_SOLUTION), folder / KAGGLE_SOLUTION
    for devkit in (path / DEVKIT, path / f"{DEVKIT}.tar.gz", val.parent / DEVKIT):
        if devkit.exists():
            by_number = read_devkit(devkit)
            return {f"ILSVRC2012_val_{n:08d}": w for n, w in by_number.items()}, devkit
    raise DatasetError(
        f"{val} is a flat folder of images but no ground truth was found: put Kaggle's "
        f"{KAGGLE_SOLUTION} or the devkit ({DEVKIT}/ or {DEVKIT}.tar.gz) in {path}, or sort the "
        "images into val/<wnid>/ folders"
    )


def flat_val_samples(path: Path, val: Path, classes: Sequence[str]) -> list[tuple[str, int]]:
    """``(path, label)`` of a flat validation folder, labelled by its ground truth."""
    files = _image_files(val)
    if not files:
        raise DatasetError(f"{val} holds no images")
    labels, source = _find_labels(path, val)
    index = {wnid: i for i, wnid in enumerate(classes)}
    samples, unlabelled, other_classes = [], [], 0
    for file in files:
        stem = Path(file).stem
        wnid = labels.get(stem)
        if wnid is None:
            unlabelled.append(stem)
        elif wnid in index:
            samples.append((file, index[wnid]))
        else:
            other_classes += 1
    if unlabelled:
        raise DatasetError(
            f"{len(unlabelled)} images of {val} have no label in {source}, e.g. {unlabelled[0]}"
        )
    if other_classes:
        log.warning(
            "warning: %d validation images of %s belong to classes absent from train/ and are "
            "left out (%d kept)",
            other_classes,
            val,
            len(samples),
        )
    if not samples:
        raise DatasetError(f"no image of {val} belongs to a class of the train split")
    return samples


def open_imagenet(path: str, split: str) -> LabeledImages:
    """Open one split of ``imagenet:PATH`` (see the module docstring)."""
    given = Path(path).expanduser().absolute()
    if not given.is_dir():
        raise DatasetError(f"ImageNet root {given} does not exist")
    root = data_root(given)
    train, val = root / "train", root / "val"
    for folder in (train, val):
        if not folder.is_dir():
            raise DatasetError(f"ImageNet root {given} has no {folder.name}/ directory")
    classes = class_folders(train)
    if split == "train":
        samples = list_class_images(train, classes)
    elif any(entry.is_dir() for entry in os.scandir(val)):
        samples = list_class_images(val, classes)
    else:
        samples = flat_val_samples(given, val, classes)
    return file_images(
        f"imagenet:{given.resolve()}",
        split,
        root,
        samples,
        classes,
        read_superclasses(given, classes),
    )
