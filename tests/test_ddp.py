"""Distributed training on the CPU: two gloo processes under torchrun (Lightning's ddp strategy).

One torchrun launch trains BYOL+SEM and MoCo v2+ +SEM for two epochs on two processes, recording
after every step a hash of every parameter and buffer on each rank and every checkpoint file
each rank writes; then it resumes each run from its first checkpoint, again on two processes,
through the command line. This test then checks that both ranks held identical weights after
each step, that the MoCo queue took the keys of both processes, that every checkpoint was written
once, by rank 0, that the two-process resume ends bit-identical to the uninterrupted run, and
resumes ``last.ckpt`` in a single process. About a minute on two cores, most of it start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from semprobe.pretrain import PretrainConfig, run
from tests.pretrain_runs import assert_same_training_state, child_env, tiny

pytestmark = pytest.mark.slow

STEPS_PER_EPOCH = 6  # 200 images, 16 per process and step, 2 processes
QUEUE = 160  # a multiple of the 32 keys of a two-process step and of the 16 of a one-process one
METHODS = ("byol", "mocov2plus")

DDP_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import torch
    from lightning.pytorch import Callback
    from semprobe.cli import main
    from semprobe.pretrain import PretrainConfig, run
    from semprobe.pretrain.checkpoint_io import SemprobeCheckpointIO

    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    plan = json.loads(sys.argv[1])
    log = plan["log"]

    # Record every checkpoint file this process writes, then write it as usual.
    write = SemprobeCheckpointIO.save_checkpoint
    def recorded(self, checkpoint, path, storage_options=None):
        with open(os.path.join(log, f"writes-rank{rank}.txt"), "a") as f:
            f.write(f"{path}\\n")
        return write(self, checkpoint, path, storage_options)
    SemprobeCheckpointIO.save_checkpoint = recorded

    def digest(tensor):
        data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        return hashlib.sha256(data.tobytes()).hexdigest()

    class Hashes(Callback):
        # Batch norm's running statistics are each process's own until DDP broadcasts rank 0's
        # at the next forward; everything else must agree after every step.
        def __init__(self, name):
            self.name, self.rows = name, []
        def record(self, trainer, module):
            state = {k: digest(v) for k, v in module.state_dict().items()
                     if "running_" not in k and "num_batches_tracked" not in k}
            ptr = module.state_dict().get("criterion_1.memory_bank.bank_ptr")
            self.rows.append([trainer.global_step, None if ptr is None else int(ptr), state])
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.record(trainer, module)
        def on_train_end(self, trainer, module):
            self.record(trainer, module)
            with open(os.path.join(log, f"{self.name}-rank{rank}.json"), "w") as f:
                json.dump(self.rows, f)

    for name, config in plan["runs"].items():
        run(PretrainConfig(**config), [Hashes(name)])
        main(plan["resumes"][name])
    """
)


def _toml(path: Path, options: dict[str, Any]) -> Path:
    def value(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else json.dumps(v)

    path.write_text("".join(f"{k} = {value(v)}\n" for k, v in options.items()))
    return path


def _config(method: str, out: Path, **changes: Any) -> dict[str, Any]:
    extra = {"queue_size": QUEUE} if method == "mocov2plus" else {}
    return tiny(
        method,
        True,
        dataset="synthetic:train=2,test=1",
        batch_size=16,
        epochs=2,
        accelerator="cpu",
        devices="2",
        strategy="ddp",
        keep_all_checkpoints=True,
        out=str(out),
        **{**extra, **changes},
    )


@pytest.fixture(scope="module")
def ddp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ddp")
    log = root / "log"
    log.mkdir()
    runs = {m: _config(m, root / m) for m in METHODS}
    resumes = {}
    for m in METHODS:
        options = {k: v for k, v in _config(m, root / f"{m}-resumed").items() if k != "method"}
        toml = _toml(root / f"{m}-resumed.toml", {"method": m, **options})
        first = root / m / "checkpoints" / f"step{STEPS_PER_EPOCH:07d}.ckpt"
        resumes[m] = ["pretrain", "--config", str(toml), "--resume", str(first)]
    plan = {"log": str(log), "runs": runs, "resumes": resumes}
    script = root / "ddp_script.py"
    script.write_text(DDP_SCRIPT)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    proc = subprocess.run(
        [*torchrun, "--nproc-per-node", "2", str(script), json.dumps(plan)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"root": root, "log": log, "runs": runs}


def _rows(ddp: dict[str, Any], method: str, rank: int) -> list[Any]:
    return json.loads((ddp["log"] / f"{method}-rank{rank}.json").read_text())


@pytest.mark.parametrize("method", METHODS)
def test_both_ranks_hold_identical_weights_after_every_step(ddp: Any, method: str) -> None:
    rank0, rank1 = _rows(ddp, method, 0), _rows(ddp, method, 1)
    steps = 2 * STEPS_PER_EPOCH
    assert [r[0] for r in rank0] == [r[0] for r in rank1] == [*range(steps), steps]
    for (step, _, state0), (_, _, state1) in zip(rank0, rank1, strict=True):
        assert state0.keys() == state1.keys()
        differing = [k for k in state0 if state0[k] != state1[k]]
        assert not differing, f"step {step}: {differing[:5]}"
    # The weights did change from step to step (all but the first step, which the linear
    # warm-up takes at learning rate 0), so equal hashes are not equal by accident.
    key = "encoder.embedder.0.weight"
    assert len({row[2][key] for row in rank0}) == steps
    final = torch.load(ddp["root"] / method / "final.ckpt", weights_only=True)["state_dict"]
    last = rank0[-1][2]
    from hashlib import sha256

    for name, tensor in final.items():
        if name in last:
            data = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            assert sha256(data).hexdigest() == last[name], name


def test_moco_queue_takes_the_keys_of_both_processes(ddp: Any) -> None:
    pointers = [row[1] for row in _rows(ddp, "mocov2plus", 0)]
    # 32 keys per step: the 16 of each process, gathered before they are queued.
    assert pointers == [(32 * step) % QUEUE for step in range(2 * STEPS_PER_EPOCH + 1)]
    assert pointers == [row[1] for row in _rows(ddp, "mocov2plus", 1)]


@pytest.mark.parametrize("method", METHODS)
def test_each_checkpoint_is_written_once_by_rank_zero(ddp: Any, method: str) -> None:
    assert not (ddp["log"] / "writes-rank1.txt").exists()
    writes = (ddp["log"] / "writes-rank0.txt").read_text().splitlines()
    root = ddp["root"]
    expected = [root / method / "checkpoints" / f"step{s:07d}.ckpt" for s in (6, 12)]
    expected.append(root / method / "final.ckpt")
    expected.append(root / f"{method}-resumed" / "checkpoints" / "step0000012.ckpt")
    expected.append(root / f"{method}-resumed" / "final.ckpt")
    mine = [Path(w) for w in writes if Path(w).is_relative_to(root / method)] + [
        Path(w) for w in writes if Path(w).is_relative_to(root / f"{method}-resumed")
    ]
    assert sorted(mine) == sorted(expected)
    listing = sorted(p.name for p in (root / method / "checkpoints").iterdir())
    assert listing == ["last.ckpt", "step0000006.ckpt", "step0000012.ckpt"]
    assert os.path.samefile(
        root / method / "checkpoints" / "last.ckpt", root / method / "final.ckpt"
    )
    assert not list(root.rglob(".*.tmp*"))


@pytest.mark.parametrize("method", METHODS)
def test_a_two_process_resume_ends_where_the_uninterrupted_run_does(ddp: Any, method: str) -> None:
    root = ddp["root"]
    state = assert_same_training_state(
        root / method / "final.ckpt", root / f"{method}-resumed" / "final.ckpt"
    )
    assert state["global_step"] == 2 * STEPS_PER_EPOCH


@pytest.mark.parametrize("method", METHODS)
def test_last_ckpt_of_a_two_process_run_resumes_in_one_process(
    ddp: Any, method: str, tmp_path: Path
) -> None:
    root = ddp["root"]
    last = root / method / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=True)
    config = {**ddp["runs"][method], "devices": "1", "strategy": "auto", "epochs": 3}
    final = run(PretrainConfig(**{**config, "resume": str(last), "out": str(tmp_path)}))
    after = torch.load(final, weights_only=True)
    # One process takes all 200 images, 16 per step: 12 more steps.
    assert after["global_step"] == 2 * STEPS_PER_EPOCH + 12
    moved = [
        k
        for k, v in after["state_dict"].items()
        if v.is_floating_point() and not torch.equal(v, before["state_dict"][k])
    ]
    assert (
        "encoder.embedder.0.weight" in moved
        and "momentum_encoder.backbone.features.0.weight" in moved
    )
    assert all(
        torch.isfinite(v).all() for v in after["state_dict"].values() if v.is_floating_point()
    )
    if method == "mocov2plus":
        pointer = int(after["state_dict"]["criterion_1.memory_bank.bank_ptr"])
        assert pointer == (32 * 2 * STEPS_PER_EPOCH + 16 * 12) % QUEUE
