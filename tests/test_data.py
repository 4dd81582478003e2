"""The data layer: synthetic, ImageFolder (on the real CIFAR-100 images) and its errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from semprobe import synthetic
from semprobe.data import eval_transform, open_dataset
from semprobe.errors import DatasetError


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


def test_synthetic_superclasses_share_their_texture() -> None:
    """Classes of one superclass look alike in their background; the planted structure is real."""
    images, labels = synthetic.make_split("train", 20, seed=0)
    # Background statistics: mean colour outside the central object region.
    border = np.concatenate(
        [images[:, :4].reshape(len(images), -1, 3), images[:, -4:].reshape(len(images), -1, 3)],
        axis=1,
    )
    colour = border.mean(axis=1)
    sup = labels // 5
    within = np.mean([colour[sup == s].std(axis=0).mean() for s in range(20)])
    between = colour.reshape(20, -1, 3).mean(axis=1).std(axis=0).mean()
    assert between > 2 * within


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
    with pytest.raises(DatasetError, match="no test/ directory"):
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
    with pytest.raises(DatasetError, match="unknown split"):
        open_dataset("synthetic", "val")
