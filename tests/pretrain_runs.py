"""Tiny real pre-training runs shared by the pre-training tests: configs, a loss recorder, a
process that kills itself mid-run, and an exact comparison of two checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback

REPO = Path(__file__).resolve().parents[1]

# The small CNN at L = 8, V = 4 with 64-wide heads; one intra-op thread (on a shared two-core
# machine two OpenMP threads spin against each other) and deterministic kernels, so that runs
# are bit-identical.
TINY: dict[str, Any] = {
    "backbone": "small_cnn",
    "num_simplices": 8,
    "vocab": 4,
    "proj_hidden_dim": 64,
    "proj_output_dim": 32,
    "batch_size": 32,
    "warmup_epochs": 1,
    "checkpoint_every": 1,
    "log_every": 1,
    "progress": False,
    "deterministic": True,
    "threads": 1,
}
# The method options at the same toy size: queues of one to two batches; SwAV's queue and
# DINO's teacher-temperature warm-up start within the run so that a resume crosses them.
METHOD_TINY: dict[str, dict[str, Any]] = {
    "byol": {"pred_hidden_dim": 64},
    "mocov2plus": {"queue_size": 32},
    "simclr": {},
    "barlowtwins": {},
    "vicreg": {},
    "swav": {
        "queue_size": 64,
        "num_prototypes": 20,
        "queue_start_epoch": 2,
        "freeze_prototypes_epochs": 1,
    },
    "dino": {"num_prototypes": 64, "warmup_teacher_epochs": 3, "freeze_prototypes_epochs": 1},
}

# The section of a study's two-step BYOL model (staleness tests: they train it once).
TINY_PRETRAIN: dict[str, Any] = {
    "method": "byol",
    "backbone": "small_cnn",
    "num_simplices": 8,
    "vocab": 4,
    "proj_hidden_dim": 16,
    "pred_hidden_dim": 16,
    "batch_size": 32,
    "epochs": 1,
    "max_steps": 2,
    "workers": 0,
    "progress": False,
}


def tiny(method: str, sem: bool = True, **changes: Any) -> dict[str, Any]:
    """The options of a toy run of ``method`` (add ``out``, ``dataset``, ``epochs``)."""
    return {"method": method, "sem": sem, **TINY, **METHOD_TINY[method], **changes}


class Recorder(Callback):
    """Keeps each step's logged metrics (``train/<name>``) and the trained module."""

    def __init__(self, *names: str) -> None:
        self.names = names or ("ssl_loss",)
        self.values: dict[str, list[float]] = {n: [] for n in self.names}
        self.module: Any = None

    @property
    def losses(self) -> list[float]:
        return self.values["ssl_loss"]

    def on_train_batch_end(self, trainer: Any, module: Any, *args: Any) -> None:
        for name in self.names:
            self.values[name].append(float(trainer.callback_metrics[f"train/{name}"]))

    def on_train_end(self, trainer: Any, module: Any) -> None:
        self.module = module


# Trains a config (JSON in argv[1]) and SIGKILLs itself at the start of batch argv[3] of epoch
# argv[2]: a real kill, mid-epoch, after that epoch's predecessor wrote its checkpoint.
KILLED_RUN = textwrap.dedent(
    """
    import json, os, signal, sys
    import torch
    from lightning.pytorch import Callback
    from semprobe.pretrain import PretrainConfig, run

    torch.set_num_threads(1)
    EPOCH, BATCH = int(sys.argv[2]), int(sys.argv[3])

    class Kill(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.current_epoch == EPOCH and batch_idx == BATCH:
                os.kill(os.getpid(), signal.SIGKILL)

    run(PretrainConfig(**json.loads(sys.argv[1])), [Kill()])
    """
)


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run_and_kill(config: dict[str, Any], epoch: int, batch: int) -> None:
    """Run ``config`` in a child process that SIGKILLs itself at (epoch, batch); check it died."""
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, json.dumps(config), str(epoch), str(batch)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not (Path(config["out"]) / "final.ckpt").exists()


def assert_same_training_state(a_path: Path, b_path: Path) -> dict[str, Any]:
    """Two checkpoints hold identical weights, buffers and optimiser state; returns ``a``."""
    a, b = torch.load(a_path, weights_only=True), torch.load(b_path, weights_only=True)
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for sa, sb in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        assert sa["state"].keys() == sb["state"].keys()
        for pa, pb in zip(sa["state"].values(), sb["state"].values(), strict=True):
            assert all(torch.equal(pa[k], pb[k]) for k in pa)
    return a
