"""Extraction at ImageNet scale: ResNet-50, 224 px, the SEM authors' ImageNet head (L=4500, V=21).

Part of ``python -m bench extraction`` (see bench/extraction.py). Images are generated JPEGs of
ImageNet's typical sizes (about 500 x 375, quality 90) in an ``imagefolder:`` tree, so nothing is
downloaded; decoding them costs what decoding ImageNet costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

FULL = {
    "images": 32,
    "batch": 16,
    "num_simplices": 4500,
    "vocab": 21,
    "rss_images": (16, 64),  # whole batches both: activations scale with the batch
    "rounds": 3,
}
# A ResNet-50 at 224 px runs at a few images per second on a small CPU: the smoke form keeps
# to two images and one round and checks the invariant (our features are the bare loop's), not
# the time; the peak-RSS check runs at CIFAR scale there.
SMOKE = {
    "images": 2,
    "batch": 1,
    "num_simplices": 10,
    "vocab": 21,
    "rss_images": None,
    "rounds": 1,
}
SIZES = ((500, 375), (375, 500), (500, 333), (640, 480), (500, 400))


def write_folder(root: Path, images: int) -> Path:
    """``root/{train,test}/<class>/*.JPEG``: ``images`` test images over two classes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("test", images)):
        for i in range(count):
            width, height = SIZES[i % len(SIZES)]
            yy, xx = np.mgrid[0:height, 0:width]
            base = np.stack([xx / width, yy / height, (xx * yy) / (width * height)], -1) * 200
            pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            folder = root / split / f"n0000000{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / f"{i:05d}.JPEG", quality=90)
    return root


def _model(config: dict[str, Any]) -> Any:
    import torch

    from semprobe.model import ModelSpec, SEMModel

    torch.manual_seed(0)
    spec = ModelSpec("resnet50", False, config["num_simplices"], config["vocab"])
    return SEMModel(spec).eval()


def _bare_loader(root: Path, batch: int) -> Any:
    """torchvision's ImageFolder with the transform ours chooses for this model, written out."""
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision import transforms as T

    from semprobe.transforms import NORMALIZATIONS

    transform = T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(*NORMALIZATIONS["cifar10"]),  # semprobe checkpoints' statistics
        ]
    )
    return DataLoader(datasets.ImageFolder(str(root / "test"), transform), batch_size=batch)


def _timings(model: Any, root: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Ours vs the bare loop (best of two after a warm-up), and the parts of a bare pass."""
    import torch

    from semprobe.extraction import ExtractionOptions, features
    from semprobe.model import state_fingerprint

    def bare() -> tuple[np.ndarray, np.ndarray]:
        feats, logits = [], []
        with torch.no_grad():
            for x, _ in _bare_loader(root, config["batch"]):
                f = model.backbone(x)
                feats.append(f)
                logits.append(model.embedder(f))
        return torch.cat(feats).numpy(), torch.cat(logits).numpy()

    def ours() -> tuple[np.ndarray, np.ndarray]:
        with tempfile.TemporaryDirectory() as cache:
            options = ExtractionOptions(
                dataset=f"imagefolder:{root}",
                cache_dir=Path(cache),
                batch_size=config["batch"],
                progress=False,
                verbose=False,
            )
            fs = features(model, options, "test")
            return np.array(fs.features), np.array(fs.logits)

    reference = bare()  # warm-up: page cache, allocator, thread pool
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    for _ in range(config["rounds"]):
        for name, fn in (("bare", bare), ("ours", ours)):
            start = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - start)
            # The invariant the smoke form checks: the same numbers as the bare loop.
            np.testing.assert_allclose(out[0], reference[0], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(out[1], reference[1], rtol=1e-5, atol=1e-5)
    n = config["images"]
    # Once per call, whatever the number of images: hashing the weights for the cache key.
    start = time.perf_counter()
    state_fingerprint(model)
    fingerprint_s = time.perf_counter() - start
    # Ratio of the totals over alternating rounds: on a shared machine the load drifts between
    # two passes, and a best-of or a single pair can be off by 20 %.
    ours_s, bare_s = sum(times["ours"]), sum(times["bare"])
    rounds = len(times["ours"])
    return {
        "bare_images_per_s": n * rounds / bare_s,
        "ours_images_per_s": n * rounds / ours_s,
        "ratio": ours_s / bare_s,
        "fingerprint_s": fingerprint_s,
        "ratio_per_image": (ours_s - rounds * fingerprint_s) / bare_s,
        "rounds": {name: [round(t, 3) for t in ts] for name, ts in times.items()},
        "identical_to_bare": True,
        **_parts(model, root, config),
    }


def _parts(model: Any, root: Path, config: dict[str, Any]) -> dict[str, float]:
    """Seconds per image of decode + transform, backbone, SEM head (one bare pass, timed)."""
    import torch

    decode = backbone = head = 0.0
    with torch.no_grad():
        start = time.perf_counter()
        for x, _ in _bare_loader(root, config["batch"]):
            t0 = time.perf_counter()
            f = model.backbone(x)
            t1 = time.perf_counter()
            model.embedder(f)
            t2 = time.perf_counter()
            decode += t0 - start
            backbone, head = backbone + t1 - t0, head + t2 - t1
            start = time.perf_counter()
    n = config["images"]
    return {
        "decode_s_per_image": decode / n,
        "backbone_s_per_image": backbone / n,
        "head_s_per_image": head / n,
    }


RSS_SCRIPT = """
import json, sys, tempfile
from pathlib import Path
import torch
from semprobe.extraction import ExtractionOptions, features
from semprobe.model import ModelSpec, SEMModel

torch.manual_seed(0)
model = SEMModel(ModelSpec("resnet50", False, int(sys.argv[2]), int(sys.argv[3]))).eval()
with tempfile.TemporaryDirectory() as cache:
    options = ExtractionOptions(dataset="imagefolder:" + sys.argv[1], cache_dir=Path(cache),
                                batch_size=int(sys.argv[4]), progress=False, verbose=False)
    fs = features(model, options, "test")
    shape = list(fs.logits.shape)
# VmHWM: this address space's own peak (ru_maxrss after vfork + exec counts the parent's too).
with open("/proc/self/status") as fh:
    peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
print(json.dumps({"logits_shape": shape, "peak_rss_mb": peak}))
"""


def _peak_rss(root: Path, config: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, "-c", RSS_SCRIPT, str(root), str(config["num_simplices"])]
    cmd += [str(config["vocab"]), str(config["batch"])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def imagenet_scale(smoke: bool = False) -> dict[str, Any]:
    """The ImageNet-scale measurements (see the module docstring)."""
    config = SMOKE if smoke else FULL
    with tempfile.TemporaryDirectory() as tmp:
        root = write_folder(Path(tmp) / "timing", config["images"])
        model = _model(config)
        result: dict[str, Any] = {
            "images": config["images"],
            "batch_size": config["batch"],
            "image_size": 224,
            "sem_width": config["num_simplices"] * config["vocab"],
            **_timings(model, root, config),
        }
        del model
        if config["rss_images"] is None:
            return result
        small, large = (
            _peak_rss(write_folder(Path(tmp) / f"rss{n}", n), config) for n in config["rss_images"]
        )
    result["rss"] = {"small": small, "large": large}
    result["rss_growth"] = large["peak_rss_mb"] / small["peak_rss_mb"]
    return result
