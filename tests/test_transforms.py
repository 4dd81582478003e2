"""Evaluation transforms: presets chosen from the stem and the dataset, overrides, the warning when
the input size does not suit the stem, and the transform recorded wherever features go."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from semprobe.checkpoint import save_model
from semprobe.cli import main
from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions
from semprobe.model import ModelSpec, SEMModel
from semprobe.transforms import NORMALIZATIONS, choose_transform, parse_normalize, stem_mismatch
from tests.conftest import save_tiny

DATASET = "synthetic:train=1,test=1"
IMAGENET_STEM = ModelSpec("resnet50", cifar_stem=False)
CIFAR_STEM = ModelSpec("resnet18")


@pytest.mark.parametrize(
    ("spec", "native", "overrides", "expected"),
    [
        # CIFAR-like: 32 px data at a 32 px model is fed as stored.
        (CIFAR_STEM, 32, {}, "no resize, normalise cifar10"),
        # ... and a folder of any size is resized and cropped to 32.
        (CIFAR_STEM, None, {}, "resize 32 (bilinear), centre-crop 32, normalise cifar10"),
        # ImageNet-like, whatever the data: resize 256, centre-crop 224.
        (IMAGENET_STEM, None, {}, "resize 256 (bilinear), centre-crop 224, normalise cifar10"),
        (IMAGENET_STEM, 32, {}, "resize 256 (bilinear), centre-crop 224, normalise cifar10"),
        (IMAGENET_STEM, None, {"image_size": 160}, "resize 183 (bilinear), centre-crop 160"),
        (CIFAR_STEM, 32, {"image_size": 64, "resize": 72}, "resize 72 (bilinear), centre-crop 64"),
        (CIFAR_STEM, None, {"resize": 0}, "no resize, normalise cifar10"),
        (CIFAR_STEM, None, {"resize": 0, "image_size": 24}, "no resize, centre-crop 24"),
        (CIFAR_STEM, 32, {"normalize": "authors-cifar"}, "no resize, normalise authors-cifar"),
        (
            ModelSpec("resnet50", cifar_stem=False, normalize="authors-imagenet"),
            None,
            {},
            "centre-crop 224, normalise authors-imagenet mean (0.485, 0.456, 0.406) "
            "std (0.228, 0.224, 0.225)",
        ),
    ],
)
def test_presets_follow_the_stem_and_the_dataset(
    spec: ModelSpec, native: int | None, overrides: dict, expected: str
) -> None:
    assert expected in choose_transform(spec, native, **overrides).describe()


def test_the_transform_is_torchvision_s_and_pickles() -> None:
    chosen = choose_transform(IMAGENET_STEM, None, normalize="imagenet")
    reference = T.Compose(
        [T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(*NORMALIZATIONS["imagenet"])]
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (375, 500, 3), np.uint8))
    torch.testing.assert_close(chosen(image), reference(image), rtol=0, atol=0)
    again = pickle.loads(pickle.dumps(chosen))
    assert again == chosen and again.describe() == chosen.describe()
    torch.testing.assert_close(again(image), reference(image), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("imagenet-ish", "give a preset"),
        ("0.5,0.5,0.5", "give a preset"),
        ("0.5,0", "standard deviations positive"),
        ("nan,0.2", "means must be finite"),
    ],
)
def test_bad_normalize_values(text: str, message: str) -> None:
    with pytest.raises(SemprobeError, match=message):
        parse_normalize(text)


def test_custom_normalize_and_bad_options() -> None:
    assert parse_normalize("0.1,0.2,0.3,0.4,0.5,0.6") == (
        "custom",
        (0.1, 0.2, 0.3),
        (0.4, 0.5, 0.6),
    )
    with pytest.raises(SemprobeError, match="--resize must be a number of pixels or none"):
        ExtractionOptions(resize="big")
    with pytest.raises(SemprobeError, match="--image-size must be an integer >= 1"):
        ExtractionOptions(image_size=0)
    with pytest.raises(SemprobeError, match="smaller than the 224 px crop"):
        choose_transform(IMAGENET_STEM, None, resize=200)


def test_stem_mismatch_names_both_sizes() -> None:
    message = stem_mismatch(IMAGENET_STEM, 32)
    assert message is not None and "ImageNet stem" in message and "made for 224 px" in message
    assert "fed at 32 px" in message and "--image-size 224" in message
    message = stem_mismatch(CIFAR_STEM, 224)
    assert message is not None and "CIFAR stem" in message and "fed at 224 px" in message
    assert stem_mismatch(CIFAR_STEM, 32) is None and stem_mismatch(IMAGENET_STEM, 160) is None
    assert stem_mismatch(ModelSpec("small_cnn"), 224) is None


def test_stem_size_warning_in_a_real_process(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ckpt = tmp_path / "imagenet-stem.pt"
    save_model(SEMModel(ModelSpec("resnet18", cifar_stem=False, num_simplices=4, vocab=5)), ckpt)
    argv = ["extract", str(ckpt), "--dataset", DATASET, "--splits", "test", "--quiet"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--image-size", "32"]
    done = subprocess.run(
        [sys.executable, "-m", "semprobe", *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, done.stderr
    assert "resnet18 with the ImageNet stem" in warnings[0] and "fed at 32 px" in warnings[0]
    # And the choice is printed: the stem, L, V, tau, the input size and normalisation.
    assert "model: resnet18 with the ImageNet stem" in done.stdout
    assert "SEM L=4 V=5 tau=1" in done.stdout
    assert "input test: resize 32 (bilinear), centre-crop 32, normalise cifar10" in done.stdout


def test_the_transform_is_in_the_cache_key_summary_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = save_tiny(tmp_path / "m.pt")
    cache = tmp_path / "cache"
    common = ["--dataset", DATASET, "--cache-dir", str(cache), "--quiet"]
    assert main(["extract", str(ckpt), *common, "--splits", "test"]) == 0
    assert main(["extract", str(ckpt), *common, "--splits", "test", "--normalize", "imagenet"]) == 0
    manifests = [json.loads(p.read_text()) for p in sorted(cache.glob("*/manifest.json"))]
    assert sorted(m["transform"]["normalize"] for m in manifests) == ["cifar10", "imagenet"]
    assert len({m["key"]["transform"] for m in manifests}) == 2  # two cache entries
    run = tmp_path / "run"
    argv = ["relevance", str(ckpt), *common, "--out", str(run), "--normalize", "0.5,0.25"]
    argv += ["--epochs", "5", "--permutations", "20", "--k", "2", "--k-max", "3"]
    assert main(argv) == 0
    expected = "no resize, normalise custom mean (0.5, 0.5, 0.5) std (0.25, 0.25, 0.25)"
    assert f"input train: {expected}" in capsys.readouterr().out
    summary = json.loads((run / "m" / "relevance" / "summary.json").read_text())
    assert summary["transform"] == expected
    assert json.loads((run / "m" / "model.json").read_text())["transform"] == expected
