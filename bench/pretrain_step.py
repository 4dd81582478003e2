"""Cost of SEM in a pre-training step: BYOL + SEM vs BYOL, same backbone and batch, on the CPU.

One step is what the trainer does per batch: forward of both views through the online and
momentum branches, backward, LARS step, EMA update (online classifiers included). Steps of the two
models alternate so that both see the same machine load; the ratio of their median step times is
reported. Full size is the paper's CIFAR model (Lavoie et al., ICLR 2023, arXiv 2204.00616):
ResNet-18 with the CIFAR stem, L = 5000, V = 13, projector 4096-256, predictor 4096, at the
paper's batch of 256 and at 32. SEM's extra work is partly per sample (the L*V-wide matrix
products) and partly per step (LARS and EMA over its ~600 M parameters), so its share shrinks as
the batch grows; the ratio reported is the one at the paper's batch.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from bench._common import machine_info, peak_rss_mb
from pretrain.base import MomentumMethod
from pretrain.config import PretrainConfig
from pretrain.optim import build_optimizer, parameter_groups
from pretrain.train import build_module

TARGET_RATIO = 1.15


def _sizes(smoke: bool) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """Model options and (batch size, timed steps per model) pairs, the reported one last."""
    if smoke:
        model = {
            "backbone": "small_cnn",
            "num_simplices": 16,
            "vocab": 4,
            "proj_hidden_dim": 64,
            "pred_hidden_dim": 64,
            "proj_output_dim": 32,
        }
        return model, [(8, 2)]
    model = {
        "backbone": "resnet18",
        "cifar_stem": True,
        "num_simplices": 5000,
        "vocab": 13,
        "proj_hidden_dim": 4096,
        "pred_hidden_dim": 4096,
        "proj_output_dim": 256,
    }
    return model, [(32, 3), (256, 2)]


class _Stepper:
    """One model with its LARS optimiser, stepped on a fixed random batch."""

    def __init__(self, module: MomentumMethod, batch: tuple[torch.Tensor, ...]) -> None:
        self.module = module.train()
        groups = parameter_groups(module.ssl_networks(), module.classifiers, module.optim)
        self.optimizer = build_optimizer(groups, module.optim)
        self.batch = batch
        self.times: list[float] = []

    def step(self, timed: bool) -> None:
        start = time.perf_counter()
        loss, _ = self.module.compute_losses(self.batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.module.update_momentum_networks(0.99)
        if timed:
            self.times.append(time.perf_counter() - start)


def _params(module: MomentumMethod) -> int:
    return sum(p.numel() for p in module.parameters())


def run(smoke: bool = False) -> dict[str, Any]:
    """Median CPU step time of BYOL + SEM over BYOL (see the module docstring).

    Parameters
    ----------
    smoke:
        Toy sizes (small CNN, L = 16, V = 4, batch 8) that finish in seconds.

    Returns
    -------
    dict
        ``name``, ``baseline``, ``ratio`` (SEM step time / BYOL step time) at the last batch
        size, both median step times, ``by_batch_size`` (the same at each batch size),
        parameter counts, the target and whether it is met, a ``note`` and the machine.
    """
    model, plan = _sizes(smoke)
    by_batch = {}
    for batch_size, steps in plan:
        by_batch[batch_size] = _measure(model, batch_size, steps)
    batch_size = plan[-1][0]
    reported = by_batch[batch_size]
    ratio = reported["ratio"]
    width = model["num_simplices"] * model["vocab"]
    extra = reported["sem_params"] - reported["baseline_params"]
    trend = ", ".join(f"x{r['ratio']:.2f} at batch {b}" for b, r in by_batch.items())
    if ratio <= TARGET_RATIO:
        note = f"SEM step {trend} of BYOL's: within the 15% overhead target at batch {batch_size}."
    else:
        note = (
            f"SEM step {trend} of BYOL's, above the 15% target. SEM adds {extra:,} parameters "
            f"({reported['sem_params'] / reported['baseline_params']:.1f}x BYOL's): the embedder "
            f"(backbone width x {width:,}), the projector's first layer grown from backbone "
            f"width x {model['proj_hidden_dim']} to {width:,} x {model['proj_hidden_dim']}, "
            f"their EMA copies, and online classifiers on {width:,} inputs."
        )
    return {
        "name": "pretrain_step",
        "baseline": "BYOL step",
        "ratio": ratio,
        "batch_size": batch_size,
        "sem_step_s": reported["sem_step_s"],
        "baseline_step_s": reported["baseline_step_s"],
        "by_batch_size": {str(b): r for b, r in by_batch.items()},
        "model": model,
        "sem_params": reported["sem_params"],
        "baseline_params": reported["baseline_params"],
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "peak_rss_mb": peak_rss_mb(),
        "note": note,
        "smoke": smoke,
        "machine": machine_info(),
    }


def _measure(model: dict[str, Any], batch_size: int, steps: int) -> dict[str, Any]:
    """Median step times of BYOL + SEM and BYOL at one batch size, steps alternating."""
    generator = torch.Generator().manual_seed(0)
    views = [torch.randn(batch_size, 3, 32, 32, generator=generator) for _ in range(2)]
    batch = (views[0], views[1], torch.randint(0, 100, (batch_size,), generator=generator))
    steppers = {}
    for name, sem in (("byol_sem", True), ("byol", False)):
        cfg = PretrainConfig(method="byol", sem=sem, batch_size=batch_size, **model).resolved()
        torch.manual_seed(0)
        steppers[name] = _Stepper(build_module(cfg, num_classes=100), batch)
    for stepper in steppers.values():  # warm-up: allocations, optimiser state
        stepper.step(timed=False)
    for _ in range(steps):
        for stepper in steppers.values():
            stepper.step(timed=True)
    sem_s = statistics.median(steppers["byol_sem"].times)
    base_s = statistics.median(steppers["byol"].times)
    sem_params, base_params = (_params(s.module) for s in steppers.values())
    return {
        "ratio": sem_s / base_s,
        "sem_step_s": sem_s,
        "baseline_step_s": base_s,
        "steps_timed": steps,
        "sem_params": sem_params,
        "baseline_params": base_params,
    }


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
