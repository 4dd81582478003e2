"""Labelled images: the one dataset type every ``--dataset`` opens as, and the image reader.

:class:`LabeledImages` is a torch ``Dataset`` of ``(transform(PIL image), label)`` with class
names, superclass names where known, raw ``uint8`` images for thumbnails, and what the feature
cache needs to tell two datasets apart (a key, and for folders a fingerprint of the files).
:func:`read_rgb` reads any image file as RGB, or raises :class:`UnreadableImage` naming it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from semprobe.errors import DatasetError

SKIP_HINT = "pass --skip-unreadable to leave unreadable images out"
# What PIL raises on damaged files: OSError (truncated data, UnidentifiedImageError), SyntaxError
# (broken PNG chunks), ValueError and EOFError (bad headers), DecompressionBombError.
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class UnreadableImage(DatasetError):
    """An image file that cannot be decoded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}; {SKIP_HINT}")
        self.path = path
        self.reason = reason


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB: grayscale, 16-bit, RGBA, CMYK and palette images alike.

    Alpha is dropped (as torchvision's ``pil_loader`` does); 16-bit samples keep their top 8 bits
    (PIL's own conversion would clip them at 255).

    Examples
    --------
    >>> to_rgb(Image.new("I;16", (2, 2), 0x8000)).getpixel((0, 0))
    (128, 128, 128)
    >>> to_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 0))).getpixel((0, 0))
    (255, 255, 255)
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.int64)
        scaled = np.clip(values >> 8 if values.max(initial=0) > 255 else values, 0, 255)
        image = Image.fromarray(scaled.astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # PIL warns when a palette with transparency goes to RGB
    return image if image.mode == "RGB" else image.convert("RGB")


def read_rgb(path: str) -> Image.Image:
    """Decode the image file at ``path`` completely, as RGB.

    Raises
    ------
    UnreadableImage
        For a missing, empty, truncated or otherwise undecodable file, naming it.
    """
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later
            return to_rgb(image)
    except _PIL_ERRORS as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableImage(str(path), reason) from None


class LabeledImages(Dataset):
    """Images with integer labels, class names and (optionally) superclass names.

    Parameters
    ----------
    key:
        Canonical dataset identity, e.g. ``cifar100`` or ``imagefolder:/data/x`` (used in caches).
    split:
        ``train``, ``val`` or ``test``.
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
    path_of:
        ``path_of(i)``: the file of image ``i``, for messages (None for in-memory images).
    fingerprint:
        A hash of the files (names, sizes, modification times) and labels, or None when the key
        alone identifies the data.
    native_size:
        The side of every image when all share one (32 for CIFAR), else None.

    Examples
    --------
    >>> ds = LabeledImages("demo", "train", np.array([0, 1]), ["a", "b"],
    ...                    lambda i: Image.new("RGB", (4, 4)))
    >>> len(ds), ds[1][1], ds.without({0: "broken"}).labels.tolist()
    (2, 1, [1])
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
        *,
        path_of: Callable[[int], str] | None = None,
        fingerprint: str | None = None,
        native_size: int | None = None,
    ) -> None:
        self.key = key
        self.split = split
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = list(class_names)
        self.superclass_of = superclass_of
        self.transform = transform
        self.fingerprint = fingerprint
        self.native_size = native_size
        self._load = load
        self._path_of = path_of
        # How open_dataset opened it (to open it again in another process), and what was left
        # out by without() as {index in the opened dataset: reason}.
        self.open_args: dict[str, Any] | None = None
        self.excluded: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self._load(index)
        return (self.transform(image) if self.transform else image), int(self.labels[index])

    def load(self, index: int) -> Image.Image:
        """Image ``index`` as an RGB PIL image, untransformed."""
        return self._load(index)

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as ``uint8`` ``(H, W, 3)``, untransformed (for thumbnails)."""
        return np.asarray(self._load(index).convert("RGB"))

    def name_of(self, index: int) -> str:
        """The file of image ``index``, or ``<key> <split> image <index>`` for in-memory data."""
        if self._path_of is not None:
            return self._path_of(index)
        return f"{self.key} {self.split} image {index}"

    def superclass_labels(self) -> list[str] | None:
        """Superclass of each class index, or None when unknown."""
        if self.superclass_of is None:
            return None
        return [self.superclass_of[name] for name in self.class_names]

    def without(self, reasons: Mapping[int, str]) -> LabeledImages:
        """A view without the images ``reasons`` names (index -> why it is left out).

        Applies once, to a dataset as :func:`~semprobe.data.open_dataset` opened it, so that
        ``excluded`` indexes that dataset (and another process can rebuild the view from it).
        """
        if not reasons:
            return self
        if self.excluded:
            raise ValueError("without() applies to a dataset as opened, not to a view")
        keep = np.setdiff1d(np.arange(len(self)), np.fromiter(reasons, dtype=np.int64))
        digest = hashlib.sha256(f"{self.fingerprint}".encode())
        digest.update(",".join(map(str, sorted(reasons))).encode())
        view = LabeledImages(
            self.key,
            self.split,
            self.labels[keep],
            self.class_names,
            lambda i: self._load(int(keep[i])),
            self.superclass_of,
            self.transform,
            path_of=lambda i: self.name_of(int(keep[i])),
            fingerprint=digest.hexdigest(),
            native_size=self.native_size,
        )
        view.open_args = self.open_args
        view.excluded = {int(i): str(r) for i, r in sorted(reasons.items())}
        return view


def array_loader(images: np.ndarray) -> Callable[[int], Image.Image]:
    """A loader over an in-memory ``(N, H, W, 3)`` uint8 array."""
    return lambda i: Image.fromarray(images[i])
