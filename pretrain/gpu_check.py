"""A short GPU check of every method + SEM: throughput, peak memory and a falling loss.

``python -m semprobe.pretrain.gpu_check`` trains the paper's CIFAR model (Lavoie et al., ICLR 2023,
arXiv 2204.00616: ResNet-18 with the CIFAR stem, L = 5000, V = 13, batch 256, bf16-mixed) with
each of the seven methods (``--methods`` to choose; each with its own heads and defaults) for a
couple of hundred steps, on random tensors or, with ``--image-folder PATH``, on real images with the
method's augmentations. It prints, per method, images/s (timed after a warm-up), peak GPU memory
and the mean loss of the first and last steps, and ends with one summary line; the exit code is 1
when a loss did not fall. DINO runs with its teacher held at its initial weights (EMA momentum 1:
the same work per step), because a moving teacher makes a short DINO run's loss rise as centring
spreads the teacher's outputs; against a fixed teacher a falling loss means the student learns.
MoCo's loss is judged from the step its queue holds only real keys, DINO's from the step its
centre has settled. ``--compare-baseline`` also
times each method without SEM in the same process, so the two numbers share a GPU.
``--cpu-smoke`` runs the same code on the CPU at toy sizes, for tests.

On random tensors the two views are the same noise image with independent flips and added noise,
made on the device so that data loading never limits the measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer, seed_everything
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from semprobe.atomic import write_json
from semprobe.data import open_dataset
from semprobe.errors import SemprobeError
from semprobe.pretrain.augment import two_view_transform
from semprobe.pretrain.config import METHODS, PretrainConfig
from semprobe.pretrain.data import PretrainData
from semprobe.pretrain.train import build_module

NAMES = {
    "byol": "BYOL",
    "mocov2plus": "MoCo",
    "simclr": "SimCLR",
    "barlowtwins": "BarlowTwins",
    "vicreg": "VICReg",
    "swav": "SwAV",
    "dino": "DINO",
}
# Steps after which DINO's centre holds less than 0.9^20 = 12 % of its initial zero.
DINO_CENTRE_STEPS = 20
# Steps of the CPU smoke form: MoCo and DINO need their queue and centre settled first.
SMOKE_STEPS = {"mocov2plus": 40, "dino": 40}
# Options that make a short run's loss a measure of learning (see the module docstring).
CHECK_OPTIONS: dict[str, dict[str, Any]] = {"dino": {"base_momentum": 1.0, "final_momentum": 1.0}}
# Toy method options of the CPU smoke form.
SMOKE_OPTIONS: dict[str, dict[str, Any]] = {
    "byol": {"pred_hidden_dim": 64},
    "mocov2plus": {"queue_size": 64},
    "swav": {"queue_size": 64, "num_prototypes": 20, "queue_start_epoch": 0},
    "dino": {"num_prototypes": 64, "warmup_teacher_epochs": 0},
}


class _RandomBatches(Dataset):
    """``steps`` batches drawn from a fixed pool of random images (whole batches per item)."""

    def __init__(self, pool: Tensor, batch_size: int, steps: int, seed: int) -> None:
        self.pool = pool
        self.batch_size = batch_size
        self.steps = steps
        self.seed = seed

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[Tensor, Tensor]:
        generator = torch.Generator().manual_seed(self.seed + step)
        index = torch.randint(len(self.pool), (self.batch_size,), generator=generator)
        return self.pool[index], index % 10


class RandomViews(LightningDataModule):
    """Two noisy, randomly flipped views of random images, made after transfer to the device."""

    def __init__(self, batch_size: int, steps: int, image_size: int = 32, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        pool = torch.randn(max(8 * batch_size, 512), 3, image_size, image_size, generator=generator)
        self.dataset = _RandomBatches(pool, batch_size, steps, seed)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=None, shuffle=False, num_workers=0)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, labels = batch
        return _view(images), _view(images), labels


def _view(images: Tensor) -> Tensor:
    flip = torch.rand(images.shape[0], 1, 1, 1, device=images.device) < 0.5
    return torch.where(flip, images.flip(-1), images) + 0.3 * torch.randn_like(images)


@dataclass
class Meter(Callback):
    """Records each step's self-supervised loss and times the steps after ``warmup``."""

    warmup: int
    metric: str = "ssl_loss"
    losses: list[float] = field(default_factory=list)
    timed_steps: int = 0
    timed_seconds: float = 0.0
    _start: float = 0.0

    def _sync(self, module: Any) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer: Trainer, module: Any, batch: Any, idx: int) -> None:
        if idx >= self.warmup:
            self._sync(module)
            self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: Trainer, module: Any, outputs: Any, batch: Any, idx: int
    ) -> None:
        if idx >= self.warmup:
            self._sync(module)
            self.timed_seconds += time.perf_counter() - self._start
            self.timed_steps += 1
        self.losses.append(float(trainer.callback_metrics[f"train/{self.metric}"]))


@dataclass
class Result:
    """One variant's numbers."""

    name: str
    images_per_s: float
    step_ms: float
    peak_gib: float
    loss_first: float
    loss_last: float

    @property
    def falling(self) -> bool:
        return math.isfinite(self.loss_last) and self.loss_last < self.loss_first


def measure(
    name: str, cfg: PretrainConfig, steps: int, warmup: int, image_folder: str | None
) -> Result:
    """Train ``cfg`` for ``steps`` steps and measure it (see the module docstring)."""
    cfg = cfg.resolved()
    batch = int(cfg.batch_size or 0)
    seed_everything(cfg.seed, verbose=False)
    data: LightningDataModule
    if image_folder:
        images = open_dataset(f"imagefolder:{image_folder}", "train")
        transform = two_view_transform(cfg.method, cfg.image_size)
        data = PretrainData(images, transform, batch, int(cfg.workers or 0), cfg.seed)
        num_classes = len(images.class_names)
    else:
        data, num_classes = RandomViews(batch, steps, cfg.image_size, cfg.seed), 10
    module = build_module(cfg, num_classes)
    meter = Meter(warmup=warmup)
    trainer = Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        precision=cfg.precision,  # type: ignore[arg-type]
        max_steps=steps,
        max_epochs=10**4 if image_folder else 1,  # max_steps ends the run
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        benchmark=True,
        callbacks=[meter],
    )
    on_gpu = torch.cuda.is_available() and cfg.accelerator != "cpu"
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=data)
    peak = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else float("nan")
    losses = _judged_losses(cfg, meter.losses, batch)
    k = max(1, min(10, len(losses) // 4))
    step_s = meter.timed_seconds / max(meter.timed_steps, 1)
    return Result(
        name=name,
        images_per_s=batch / step_s if step_s > 0 else float("nan"),
        step_ms=1000 * step_s,
        peak_gib=peak,
        loss_first=sum(losses[:k]) / k,
        loss_last=sum(losses[-k:]) / k,
    )


def _judged_losses(cfg: PretrainConfig, losses: list[float], batch: int) -> list[float]:
    """The steps whose loss shows learning, when enough of them remain: MoCo's from the step its
    queue holds only real keys (before, it compares with random ones, an easier task); DINO's
    once its centre (an EMA at momentum 0.9) has forgotten its start at zero, which first makes
    the teacher's targets harder."""
    start = {"mocov2plus": int(cfg.queue_size or 0) // batch, "dino": DINO_CENTRE_STEPS}
    first = start.get(cfg.method, 0)
    return losses[first:] if len(losses) - first >= 8 else losses


def _configs(args: argparse.Namespace, method: str) -> tuple[PretrainConfig, int, int]:
    if args.cpu_smoke:
        toy: dict[str, Any] = {
            "dataset": "synthetic",
            "backbone": "small_cnn",
            "num_simplices": 16,
            "vocab": 4,
            "proj_hidden_dim": 64,
            "proj_output_dim": 32,
            "batch_size": 16,
            "precision": "32",
            "accelerator": "cpu",
            "warmup_epochs": 0,
            "workers": 0,
            "lr": 4.0,
        }
        toy |= SMOKE_OPTIONS.get(method, {}) | CHECK_OPTIONS.get(method, {})
        base = PretrainConfig(method=method, **toy)
        return base, min(args.steps, SMOKE_STEPS.get(method, 16)), min(args.warmup_steps, 2)
    base = PretrainConfig(
        method=method,
        dataset="cifar100",
        backbone="resnet18",
        cifar_stem=True,
        num_simplices=args.num_simplices,
        vocab=args.vocab,
        batch_size=args.batch_size,
        precision=args.precision,
        accelerator="gpu",
        warmup_epochs=0,
        workers=args.workers,
        **CHECK_OPTIONS.get(method, {}),
    )
    return base, args.steps, args.warmup_steps


def _line(r: Result) -> str:
    memory = "n/a" if math.isnan(r.peak_gib) else f"{r.peak_gib:.2f} GiB"
    return (
        f"{r.name}: {r.images_per_s:,.0f} images/s ({r.step_ms:.1f} ms/step), peak memory "
        f"{memory}, loss {r.loss_first:.4f} -> {r.loss_last:.4f}"
    )


def _variants(args: argparse.Namespace) -> list[tuple[str, PretrainConfig, int, int]]:
    variants = []
    for method in args.methods:
        base, steps, warmup = _configs(args, method)
        variants.append((f"{NAMES[method]}+SEM", base, steps, warmup))
        if args.compare_baseline:
            variants.append((NAMES[method], dataclasses.replace(base, sem=False), steps, warmup))
    return variants


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; return 0 when every measured loss fell."""
    parser = argparse.ArgumentParser(
        prog="python -m semprobe.pretrain.gpu_check", description=__doc__
    )
    parser.add_argument("--image-folder", metavar="PATH", help="ImageFolder root with train/")
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), help="(default: all)"
    )
    parser.add_argument("--steps", type=int, default=200, help="steps per variant (200)")
    parser.add_argument("--warmup-steps", type=int, default=20, help="untimed steps (20)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-simplices", type=int, default=5000, metavar="L")
    parser.add_argument("--vocab", type=int, default=13, metavar="V")
    parser.add_argument("--precision", default="bf16-mixed", help="32, bf16-mixed, 16-mixed")
    parser.add_argument("--workers", type=int, default=8, help="loader workers (ImageFolder)")
    parser.add_argument(
        "--compare-baseline", action="store_true", help="also time each method without SEM"
    )
    parser.add_argument("--cpu-smoke", action="store_true", help="toy sizes on the CPU")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device (use --cpu-smoke on a CPU)", file=sys.stderr)
        return 2
    results = []
    threads = torch.get_num_threads()
    if args.cpu_smoke:
        torch.set_num_threads(1)  # toy steps: a second OpenMP thread only spins on a busy CPU
    try:
        for name, cfg, steps, warmup in _variants(args):
            result = measure(name, cfg, steps, warmup, args.image_folder)
            print(_line(result), flush=True)
            results.append(result)
    except SemprobeError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    device = "cpu (smoke)" if args.cpu_smoke else torch.cuda.get_device_name(0)
    falling = [r for r in results if r.falling]
    ok = len(falling) == len(results)
    slowest = max(results, key=lambda r: r.step_ms)
    summary = (
        f"gpu_check {'OK' if ok else 'FAILED'} on {device}: {len(falling)}/{len(results)} "
        f"variants with a falling loss; slowest {slowest.name} {slowest.step_ms:.1f} ms/step"
    )
    if args.compare_baseline:
        ratios = [
            f"{sem.name} x{sem.step_ms / base.step_ms:.2f}"
            for sem, base in zip(results[::2], results[1::2], strict=True)
        ]
        summary += "; SEM step time of the baseline's: " + ", ".join(ratios)
    failed = [r.name for r in results if not r.falling]
    print(summary + (f" (loss did not fall: {', '.join(failed)})" if failed else ""))
    if args.json:
        _write_json(Path(args.json), args, device, results)
    return 0 if ok else 1


def _write_json(path: Path, args: argparse.Namespace, device: str, results: list[Result]) -> None:
    """Every variant's numbers and, with ``--compare-baseline``, SEM's step time over BYOL's."""
    record: dict[str, Any] = {
        "device": device,
        # The smoke form runs toy sizes of its own, not the flags'.
        "sizes": "toy (--cpu-smoke)" if args.cpu_smoke else "as the flags say",
        "batch_size": None if args.cpu_smoke else args.batch_size,
        "precision": None if args.cpu_smoke else args.precision,
        "num_simplices": None if args.cpu_smoke else args.num_simplices,
        "vocab": None if args.cpu_smoke else args.vocab,
        "data": "image folder" if args.image_folder else "random tensors",
        "variants": [{**_finite(dataclasses.asdict(r)), "falling": r.falling} for r in results],
    }
    if args.compare_baseline:
        record["sem_step_time_ratio"] = {
            sem.name: sem.step_ms / base.step_ms
            for sem, base in zip(results[::2], results[1::2], strict=True)
        }
    write_json(path, record)


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: the CPU's peak memory (not measured) becomes null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


if __name__ == "__main__":
    sys.exit(main())
