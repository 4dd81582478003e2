"""Image folders: ``imagefolder:PATH`` and the pieces ``imagenet:PATH`` shares with it.

A folder dataset is ``PATH/train/<class>/<image>`` plus ``PATH/test/<class>/...`` or
``PATH/val/<class>/...`` (the ``test`` split reads ``test/`` when present, else ``val/``; the
``val`` split reads ``val/``). Classes are the train split's folder names, sorted, so that a
class has the same index in every split. Files are listed by torchvision's ``make_dataset``
(any of its image extensions, any size or mode: see :func:`semprobe.images.to_rgb`). An optional
``superclasses.csv`` (``class,superclass``) beside the splits gives superclasses.

The dataset's fingerprint hashes every file's relative name, label, size and modification time,
so the feature cache notices a folder whose contents changed under the same path.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semprobe.errors import DatasetError
from semprobe.images import LabeledImages, read_rgb

# The folder each split reads, in order of preference.
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val"), "val": ("val",)}


def split_folder(root: Path, split: str) -> Path:
    """The folder of ``split`` under ``root``.

    Raises
    ------
    DatasetError
        When ``root`` lacks it (or lacks ``train/``, which every split needs for its classes).
    """
    if not root.is_dir():
        raise DatasetError(f"image folder root {root} does not exist")
    has_train = (root / "train").is_dir()
    tests = [name for name in SPLIT_FOLDERS["test"] if (root / name).is_dir()]
    if not has_train and not tests:
        raise DatasetError(
            f"image folder root {root} has no train or test/ directory (test/ may be named val/)"
        )
    if not has_train:
        raise DatasetError(f"image folder root {root} has no train/ directory")
    if not tests:
        raise DatasetError(f"image folder root {root} has no test/ (or val/) directory")
    for name in SPLIT_FOLDERS[split]:
        if (root / name).is_dir():
            return root / name
    raise DatasetError(f"image folder root {root} has no {split}/ directory")


def class_folders(train: Path) -> list[str]:
    """The class names: sub-folders of the train split, sorted."""
    try:
        classes = sorted(entry.name for entry in os.scandir(train) if entry.is_dir())
    except OSError as exc:
        raise DatasetError(f"cannot list {train}: {exc.strerror or exc}") from None
    if not classes:
        raise DatasetError(f"{train} has no class folders (expected {train}/<class>/<image>)")
    return classes


def list_class_images(folder: Path, classes: Sequence[str]) -> list[tuple[str, int]]:
    """``(path, label)`` of every image under ``folder/<class>/``, in torchvision's order."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    extra = sorted(
        entry.name
        for entry in os.scandir(folder)
        if entry.is_dir() and entry.name not in set(classes)
    )
    if extra:
        raise DatasetError(
            f"{folder} has class folders that the train split lacks: {', '.join(extra[:5])}"
        )
    try:
        samples = make_dataset(
            str(folder),
            {name: i for i, name in enumerate(classes)},
            extensions=IMG_EXTENSIONS,
            allow_empty=True,
        )
    except OSError as exc:
        raise DatasetError(f"cannot list {folder}: {exc.strerror or exc}") from None
    if not samples:
        raise DatasetError(f"{folder} holds no images ({', '.join(IMG_EXTENSIONS)})")
    return samples


def fingerprint_files(root: Path, samples: Sequence[tuple[str, int]]) -> str:
    """SHA-256 over each file's path relative to ``root``, label, size and modification time.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.png").write_bytes(b"x")
    >>> len(fingerprint_files(folder, [(str(folder / "a.png"), 0)]))
    64
    """
    digest = hashlib.sha256()
    for path, label in samples:
        try:
            info = os.stat(path)
        except OSError as exc:
            raise DatasetError(f"cannot read image {path}: {exc.strerror or exc}") from None
        relative = os.path.relpath(path, root)
        digest.update(f"{relative}\t{label}\t{info.st_size}\t{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def file_images(
    key: str,
    split: str,
    root: Path,
    samples: Sequence[tuple[str, int]],
    classes: Sequence[str],
    superclass_of: dict[str, str] | None,
) -> LabeledImages:
    """A :class:`LabeledImages` over image files, fingerprinted (see :func:`fingerprint_files`)."""
    paths = [path for path, _ in samples]
    return LabeledImages(
        key,
        split,
        np.asarray([label for _, label in samples], dtype=np.int64),
        classes,
        lambda i: read_rgb(paths[i]),
        superclass_of,
        path_of=lambda i: paths[i],
        fingerprint=fingerprint_files(root, samples),
    )


def read_superclasses(root: Path, classes: Sequence[str]) -> dict[str, str] | None:
    """``root/superclasses.csv`` (``class,superclass``) for ``classes``, or None without one."""
    csv_path = root / "superclasses.csv"
    if not csv_path.exists():
        return None
    from semprobe.wordnet import read_superclass_csv

    return read_superclass_csv(csv_path, list(classes))


def open_imagefolder(path: str, split: str) -> LabeledImages:
    """Open one split of ``imagefolder:PATH`` (see the module docstring)."""
    root = Path(path).expanduser().absolute()
    folder = split_folder(root, split)
    classes = class_folders(root / "train")
    samples = list_class_images(folder, classes)
    return file_images(
        f"imagefolder:{root.resolve()}",
        split,
        root,
        samples,
        classes,
        read_superclasses(root, classes),
    )
