"""Feature extraction: our cached extraction vs a bare torchvision forward loop.

Both read the same images with the same transform, DataLoader and batch size; the baseline
only runs the model and keeps the outputs in a list, ours also writes features and SEM logits
to the cache (fsynced, renamed into place). Three measurements:

* CIFAR scale: ResNet-18 + SEM head (L=500, V=13) on 32 px images, the images per second of both.
* ImageNet scale (``imagenet``): a ResNet-50 with the ImageNet stem and the SEM authors' ImageNet
  head (L=4500, V=21: 94,500 logits per image) on a generated folder of ImageNet-sized JPEGs,
  resized to 256 and centre-cropped to 224, through ``semprobe.extraction.features`` (the
  transform chosen from the stem) against torchvision's ``ImageFolder`` with the same transform.
  The smoke form asserts that both give the same features and logits. Also measured on the same
  images: seconds per image of decoding and transforming alone, of the backbone and of the SEM
  head, the figures docs/imagenet.md scales to ImageNet-1k; and the peak RSS of a fresh process
  extracting N and 4N images, which must not grow with N.
* Peak RSS while extracting 65,000-wide logits (L=5000, V=13) for a small and a 5x larger dataset
  in fresh processes: bounded by the batch, it must not grow with the dataset.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar100-real"


def _dataset_name(smoke: bool) -> str:
    if REAL.is_dir() and not smoke:
        return f"imagefolder:{REAL}"
    return "synthetic:train=2,test=1" if smoke else "synthetic:train=50,test=10"


def _throughput(
    dataset: str,
    split: str,
    backbone: str,
    batch: int,
    limit: int,
    device: str = "cpu",
    workers: int = 0,
    num_simplices: int = 500,
) -> dict[str, Any]:
    import torch
    from torch.utils.data import DataLoader, Subset

    from semprobe.data import eval_transform, open_dataset
    from semprobe.features import extract_features
    from semprobe.model import ModelSpec, SEMModel

    torch.manual_seed(0)
    model = SEMModel(ModelSpec(backbone, num_simplices=num_simplices, vocab=13)).eval()
    model = model.to(device)
    images = open_dataset(dataset, split, transform=eval_transform())
    n = min(limit, len(images))
    subset = Subset(images, range(n))

    def bare() -> None:
        outputs = []
        with torch.no_grad():
            loader = DataLoader(subset, batch_size=batch, shuffle=False, num_workers=workers)
            for x, _ in loader:
                feats = model.backbone(x.to(device, non_blocking=True))
                outputs.append(model.embedder(feats).cpu())  # type: ignore[misc]

    # The same images through our cache (a fresh cache each time, so nothing is reused).
    from semprobe.data import LabeledImages

    limited = LabeledImages(
        images.key + f"[:{n}]",
        split,
        images.labels[:n],
        images.class_names,
        images._load,
        images.superclass_of,
        images.transform,
    )

    def ours() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            extract_features(
                model,
                limited,
                tmp,
                batch_size=batch,
                num_workers=workers,
                device=device,
                progress=False,
            )

    bare()  # warm-up: page cache, allocator, thread pool
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    for _ in range(2):
        for name, fn in (("bare", bare), ("ours", ours)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    bare_s, ours_s = min(times["bare"]), min(times["ours"])
    return {
        "images": n,
        "batch_size": batch,
        "backbone": backbone,
        "num_simplices": num_simplices,
        "device": device,
        "workers": workers,
        "bare_images_per_s": n / bare_s,
        "ours_images_per_s": n / ours_s,
        "overhead": ours_s / bare_s - 1.0,
    }


RSS_SCRIPT = """
import json, sys, tempfile
import torch
from semprobe.features import extract_features
from semprobe.data import eval_transform, open_dataset
from semprobe.model import ModelSpec, SEMModel

def rss_mb():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) / 1024

torch.manual_seed(0)
model = SEMModel(ModelSpec("small_cnn", num_simplices=5000, vocab=13)).eval()
ds = open_dataset(sys.argv[1], sys.argv[2], transform=eval_transform())
before = rss_mb()
with tempfile.TemporaryDirectory(dir=sys.argv[4]) as tmp:
    fs = extract_features(model, ds, tmp, batch_size=int(sys.argv[3]), progress=False)
    shape = list(fs.logits.shape)
# VmHWM: this address space's own peak (ru_maxrss after vfork + exec counts the parent's too).
with open("/proc/self/status") as fh:
    peak = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM")) / 1024
print(json.dumps({"images": len(ds), "logits_shape": shape, "rss_before_extraction_mb": before,
                  "peak_rss_mb": peak}))
"""


def _peak_rss(dataset: str, split: str, batch: int) -> dict[str, Any]:
    """Peak RSS of a fresh process that opens ``dataset`` and extracts 65,000-wide logits."""
    with tempfile.TemporaryDirectory() as where:
        out = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, dataset, split, str(batch), where],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(smoke: bool = False) -> dict[str, Any]:
    """Extraction throughput ratio and peak RSS vs dataset size, at CIFAR and ImageNet scale."""
    from bench.extraction_imagenet import imagenet_scale

    dataset = _dataset_name(smoke)
    imagenet = imagenet_scale(smoke)
    if smoke:
        speed = _throughput(dataset, "train", "small_cnn", 64, 200)
        small = _peak_rss("synthetic:train=1,test=1", "train", 64)
        large = _peak_rss("synthetic:train=3,test=1", "train", 64)
    else:
        speed = _throughput(dataset, "test", "resnet18", 256, 2000)
        if dataset.startswith("imagefolder:"):
            # Images read from disk as needed: what grows with N here is extraction's own.
            small = _peak_rss(dataset, "test", 256)  # 5,000 images
            large = _peak_rss(dataset, "train", 256)  # 20,000 images, 2.6 GB of logits
        else:
            # synthetic is generated in memory at open: compare peak - rss_before_extraction.
            small = _peak_rss("synthetic:train=50,test=1", "train", 256)  # 5,000 images
            large = _peak_rss("synthetic:train=250,test=1", "train", 256)  # 25,000 images
    return {
        "name": "extraction",
        "baseline": "bare torchvision forward loop, same images, transform and batch size",
        "dataset": dataset,
        "ratio": imagenet["ratio"],  # the target's: ResNet-50 at 224 px
        "cifar_ratio": 1.0 + speed["overhead"],
        "target": "overhead <= 10% (ratio <= 1.1) at 224 px with a ResNet-50; peak RSS "
        "independent of dataset size",
        **speed,
        "imagenet": imagenet,
        "rss_small": small,
        "rss_large": large,
        "rss_growth": large["peak_rss_mb"] / small["peak_rss_mb"],
        "extraction_rss_growth": (large["peak_rss_mb"] - large["rss_before_extraction_mb"])
        / (small["peak_rss_mb"] - small["rss_before_extraction_mb"]),
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.extraction --throughput DATASET``: only the images/s of both loops."""
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--throughput", metavar="DATASET", required=True, help="e.g. imagefolder:DIR"
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--num-simplices", type=int, default=5000, metavar="L")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--limit", type=int, default=5000, help="images timed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(argv)
    speed = _throughput(
        args.throughput,
        args.split,
        args.backbone,
        args.batch_size,
        args.limit,
        args.device,
        args.workers,
        args.num_simplices,
    )
    print(json.dumps({"name": "extraction_throughput", "ratio": 1.0 + speed["overhead"]} | speed))


if __name__ == "__main__":
    main()
