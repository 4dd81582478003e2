"""The data layer: synthetic, image folders (real CIFAR-100 images, generated ones of every size and
mode), the dataset registry and their errors."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semprobe import synthetic
from semprobe.data import eval_transform, open_dataset
from semprobe.errors import DatasetError
from semprobe.images import LabeledImages, UnreadableImage, read_rgb
from tests.imagegen import MODES, class_images, pixels, truncate, write_image


def test_synthetic_is_deterministic_balanced_and_hierarchical() -> None:
    a = open_dataset("synthetic:train=3,test=2,seed=1", "train")
    b = open_dataset("synthetic:train=3,test=2,seed=1", "train")
    test = open_dataset("synthetic:train=3,test=2,seed=1", "test")
    assert len(a) == 300 and len(test) == 200
    np.testing.assert_array_equal(a.image(17), b.image(17))
    assert not np.array_equal(a.image(0), test.image(0))
    assert np.bincount(a.labels).tolist() == [3] * 100
    sup = a.superclass_labels()
    assert sup is not None and len(set(sup)) == 20
    assert all(sup.count(s) == 5 for s in set(sup))
    assert a.image(0).shape == (32, 32, 3) and a.image(0).dtype == np.uint8


def test_synthetic_classes_are_shapes_and_colour_is_a_nuisance() -> None:
    """The planted structure is real: the object's outline is shared within a superclass and
    differs across superclasses, while colour says nothing about the class."""
    images, labels = synthetic.make_split("train", 20, seed=0)
    grey = images.astype(np.float64).mean(axis=3)
    # Foreground (the object) against background, whichever of the two is lighter.
    centre = grey[:, 8:24, 8:24].reshape(len(grey), -1).mean(axis=1)
    border = np.concatenate(
        [grey[:, :3].reshape(len(grey), -1), grey[:, -3:].reshape(len(grey), -1)], axis=1
    )
    light_object = centre > border.mean(axis=1)
    mask = np.where(light_object[:, None, None], grey > 128, grey <= 128).astype(np.float64)
    sup = labels // 5
    shape_means = np.stack([mask[sup == s].mean(axis=0).ravel() for s in range(20)])
    within = np.mean(
        [np.abs(mask[sup == s] - mask[sup == s].mean(axis=0)).mean() for s in range(20)]
    )
    between = np.abs(shape_means[:, None] - shape_means[None]).mean()
    assert between > 0.5 * within  # superclass outlines differ (measured: 0.64 within)
    silhouettes = {name.split("_")[1] for name in synthetic.superclass_names()}
    assert silhouettes == set(synthetic.SILHOUETTES)
    # Colour: the class means are all alike (four shared palettes), far less than within a class.
    colour = images.reshape(len(images), -1, 3).mean(axis=1)
    class_means = np.stack([colour[labels == c].mean(axis=0) for c in range(100)])
    within_colour = np.mean([colour[labels == c].std(axis=0).mean() for c in range(100)])
    assert class_means.std(axis=0).mean() < 0.35 * within_colour  # measured: 0.24


def test_transform_yields_normalised_tensors() -> None:
    ds = open_dataset("synthetic:train=1,test=1", "test", transform=eval_transform())
    image, label = ds[5]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 32, 32)
    assert label == 5
    assert -3 < float(image.mean()) < 3


def test_imagefolder_on_real_cifar_images(real_cifar: Path, tmp_path: Path) -> None:
    root = tmp_path / "slice"
    for split, per_class in (("train", 3), ("test", 2)):
        for class_dir in sorted((real_cifar / split).iterdir())[:4]:
            dest = root / split / class_dir.name
            dest.mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:per_class]:
                shutil.copy(image, dest / image.name)
    classes = sorted(p.name for p in (root / "train").iterdir())
    lines = [
        line
        for line in (real_cifar / "superclasses.csv").read_text().splitlines()
        if line.split(",")[0] in classes or line.startswith("class,")
    ]
    (root / "superclasses.csv").write_text("\n".join(lines) + "\n")
    ds = open_dataset(f"imagefolder:{root}", "train", transform=eval_transform())
    assert ds.class_names == classes and len(ds) == 12
    assert ds.superclass_of is not None and set(ds.superclass_of) == set(classes)
    assert ds[0][0].shape == (3, 32, 32)
    assert ds.key == f"imagefolder:{root.resolve()}"


def test_imagefolder_without_test_split(tmp_path: Path) -> None:
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no test/ \(or val/\) directory"):
        open_dataset(f"imagefolder:{tmp_path}", "train")
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(f"imagefolder:{tmp_path / 'nope'}", "train")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("imagenet", "unknown dataset 'imagenet'"),
        ("synthetic:train=x", "must be an integer"),
        ("synthetic:size=3", "bad synthetic option"),
        ("synthetic:train=0", "out of range"),
    ],
)
def test_bad_dataset_names(name: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        open_dataset(name, "train")


def test_cifar_absent_offline_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"cifar100 not found .*--no-download"):
        open_dataset("cifar100", "train", root=tmp_path, download=False)


def test_bad_split() -> None:
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        open_dataset("synthetic", "dev")
    with pytest.raises(DatasetError, match="synthetic has no val split; use train or test"):
        open_dataset("synthetic", "val")


# -- any image folder: modes, sizes, splits, fingerprints -----------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_reads_as_rgb(tmp_path: Path, mode: str) -> None:
    path = write_image(tmp_path, "x", (40, 30), mode, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no PIL warning about palettes or modes either
        image = read_rgb(str(path))
    assert image.mode == "RGB" and image.size == (40, 30)
    grey = pixels((40, 30), 3)[..., 0]
    if mode == "I;16":
        # 16-bit samples v * 257 keep their top byte: exactly the 8-bit v.
        np.testing.assert_array_equal(np.asarray(image)[..., 0], grey)
    elif mode in ("RGBA", "P", "P-transparent"):
        reference = pixels((40, 30), 3).astype(int)
        assert np.abs(np.asarray(image).astype(int) - reference).mean() < 12  # palette error


def test_unreadable_images_are_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cut = truncate(write_image(tmp_path, "cut", (300, 200), "RGB", seed=1))
    for path, reason in ((empty, "cannot identify image file"), (cut, "truncated")):
        with pytest.raises(UnreadableImage, match=reason) as caught:
            read_rgb(str(path))
        assert caught.value.path == str(path)
        assert str(caught.value).startswith(f"cannot read image {path}: ")
        assert "--skip-unreadable" in str(caught.value)


def test_imagefolder_with_val_split_keeps_class_indices(tmp_path: Path) -> None:
    for name in ("ant", "bee", "cat"):
        class_images(tmp_path / "train" / name, 2, seed=len(name))
    class_images(tmp_path / "val" / "bee", 1, seed=7)  # val lacks ant and cat
    class_images(tmp_path / "val" / "cat", 2, seed=8)
    train = open_dataset(f"imagefolder:{tmp_path}", "train")
    test = open_dataset(f"imagefolder:{tmp_path}", "test")  # test/ absent: val/
    val = open_dataset(f"imagefolder:{tmp_path}", "val")
    assert train.class_names == test.class_names == ["ant", "bee", "cat"]
    # Indices are the train split's: "bee" is 1 in val too, not 0.
    assert test.labels.tolist() == [1, 2, 2] and val.labels.tolist() == [1, 2, 2]
    assert {image.shape[:2] for image in map(train.image, range(len(train)))} != {(32, 32)}
    assert test.native_size is None and test.fingerprint is not None
    (tmp_path / "val" / "dog").mkdir()
    with pytest.raises(DatasetError, match="class folders that the train split lacks: dog"):
        open_dataset(f"imagefolder:{tmp_path}", "test")


def test_fingerprint_follows_the_files(tmp_path: Path) -> None:
    class_images(tmp_path / "train" / "a", 2, seed=1)
    class_images(tmp_path / "test" / "a", 2, seed=2)
    name = f"imagefolder:{tmp_path}"
    first = open_dataset(name, "test").fingerprint
    assert open_dataset(name, "test").fingerprint == first
    victim = sorted((tmp_path / "test" / "a").iterdir())[0]
    stat = victim.stat()
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = open_dataset(name, "test").fingerprint
    assert touched != first  # same names and sizes, new modification time
    write_image(tmp_path / "test" / "a", "extra", (50, 50), "RGB", seed=9)
    assert open_dataset(name, "test").fingerprint not in (first, touched)


def test_registry_opens_new_dataset_kinds() -> None:
    from semprobe import data

    def opener(argument: str, split: str, root: Path | None, download: bool) -> LabeledImages:
        blank = lambda i: Image.new("RGB", (8, 8))  # noqa: E731
        return LabeledImages(f"blank:{argument}", split, np.arange(int(argument)) % 2, "ab", blank)

    data.register_dataset("blank", opener, "blank:N", "required")
    try:
        ds = open_dataset("blank:5", "test")
        assert ds.key == "blank:5" and len(ds) == 5 and ds.open_args["name"] == "blank:5"
        with pytest.raises(DatasetError, match=r"unknown dataset 'blank'.*blank:N"):
            open_dataset("blank", "test")
    finally:
        del data._REGISTRY["blank"]
