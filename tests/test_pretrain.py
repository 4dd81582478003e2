"""Pre-training: tiny real runs of BYOL / MoCo v2+ (with and without SEM) on the CPU.

Every run uses the built-in synthetic data set and the small CNN, so the whole file takes about a
minute on two cores. Runs use one intra-op thread: on a shared two-core machine two OpenMP threads
spin against each other and make each step several times slower.
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback

from semprobe.checkpoint import load_model
from semprobe.cli.arguments import build_parser
from semprobe.cli.options import pretrain_config
from semprobe.errors import SemprobeError
from semprobe.pretrain import PretrainConfig, run
from semprobe.pretrain.base import NonFiniteLossError
from semprobe.pretrain.byol import BYOL
from semprobe.pretrain.config import load_config_file
from semprobe.pretrain.mocov2plus import MoCoV2Plus, contrastive_loss

REPO = Path(__file__).resolve().parents[1]
# 200 images, batches of 32: 6 steps per epoch.
TINY: dict[str, Any] = {
    "dataset": "synthetic:train=2,test=1",
    "backbone": "small_cnn",
    "num_simplices": 8,
    "vocab": 4,
    "proj_hidden_dim": 64,
    "pred_hidden_dim": 64,
    "proj_output_dim": 32,
    "batch_size": 32,
    "queue_size": 32,  # one batch: the queue holds real keys from the second step on
    "epochs": 4,
    "warmup_epochs": 1,
    "checkpoint_every": 1,
    "log_every": 1,
    "progress": False,
    "deterministic": True,
}
STEPS_PER_EPOCH = 6
VARIANTS = [("byol", True), ("byol", False), ("mocov2plus", True), ("mocov2plus", False)]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Recorder(Callback):
    """Keeps each step's self-supervised loss and the trained module."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.module: Any = None

    def on_train_batch_end(self, trainer: Any, module: Any, *args: Any) -> None:
        self.losses.append(float(trainer.callback_metrics["train/ssl_loss"]))

    def on_train_end(self, trainer: Any, module: Any) -> None:
        self.module = module


def _variant_id(variant: tuple[str, bool]) -> str:
    return f"{variant[0]}{'+sem' if variant[1] else ''}"


@pytest.fixture(scope="module", params=VARIANTS, ids=_variant_id)
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    method, sem = request.param
    out = tmp_path_factory.mktemp(f"{method}{int(sem)}")
    recorder = Recorder()
    path = run(PretrainConfig(method=method, sem=sem, out=str(out), **TINY), [recorder])
    return {"method": method, "sem": sem, "path": path, "out": out, "recorder": recorder}


def test_runs_with_finite_falling_loss(trained: Any) -> None:
    losses = trained["recorder"].losses
    assert len(losses) == TINY["epochs"] * STEPS_PER_EPOCH
    assert all(torch.isfinite(torch.tensor(losses)))
    # MoCo's first step compares against the random initial queue, an easier task than real keys.
    start = 1 if trained["method"] == "mocov2plus" else 0
    first = sum(losses[start : start + 5]) / 5
    last = sum(losses[-6:]) / 6
    assert last < first - 0.05, losses


def test_checkpoint_round_trips_into_load_model(trained: Any) -> None:
    module = trained["recorder"].module.cpu().eval()
    loaded = load_model(trained["path"])
    assert loaded.source_format == "semprobe"
    assert loaded.spec.method == trained["method"]
    assert (loaded.spec.num_simplices, loaded.spec.vocab) == ((8, 4) if trained["sem"] else (0, 0))
    assert isinstance(module, BYOL if trained["method"] == "byol" else MoCoV2Plus)
    images = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats, logits = module.encoder.features_and_logits(images)
        feats2, logits2 = loaded.model.features_and_logits(images)
    assert torch.equal(feats, feats2)
    assert (logits is None) == (logits2 is None) == (not trained["sem"])
    if logits is not None:
        assert torch.equal(logits, logits2)


def test_checkpoints_load_weights_only(trained: Any) -> None:
    periodic = sorted((trained["out"] / "checkpoints").glob("*.ckpt"))
    assert [p.name for p in periodic] == [f"step{TINY['epochs'] * STEPS_PER_EPOCH:07d}.ckpt"]
    for path in (trained["path"], periodic[0]):
        raw = torch.load(path, weights_only=True)
        assert raw["semprobe_format"] == "semprobe-checkpoint"
        assert raw["semprobe_format_version"] == 1
        assert raw["semprobe_spec"]["backbone"] == "small_cnn"
        assert raw["semprobe_meta"]["pretrain_config"]["method"] == trained["method"]
        assert any(k.startswith("encoder.backbone.") for k in raw["state_dict"])
        assert any(k.startswith("momentum_encoder.") for k in raw["state_dict"])
        assert raw["optimizer_states"] and raw["loops"]
    assert (trained["out"] / "csv").is_dir() and (trained["out"] / "tensorboard").is_dir()


@pytest.mark.parametrize("trained", [v for v in VARIANTS if v[1]], indirect=True, ids=_variant_id)
def test_sem_output_sums_to_one_per_simplex(trained: Any) -> None:
    module = trained["recorder"].module.cpu().eval()
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        _, _, (online,) = module.online([images])
        (target,) = module.target([images])
        loaded = load_model(trained["path"]).model(images, tau=0.1)
    for out in (online, target, loaded):
        sums = out.reshape(4, 8, 4).sum(-1)
        assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)
        assert (out >= 0).all()


def test_momentum_update_is_the_ema_formula(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def params(module: Any, side: int) -> list[torch.Tensor]:
        return [
            p.detach().clone() for pair in module.momentum_pairs() for p in pair[side].parameters()
        ]

    class Snapshot(Callback):
        # A callback's on_train_batch_end runs before the module's: after the optimiser step,
        # before the EMA update.
        def on_train_batch_end(
            self, trainer: Any, module: Any, out: Any, batch: Any, i: int
        ) -> None:
            if i == 0:
                seen["online"], seen["target"] = params(module, 0), params(module, 1)

        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, i: int) -> None:
            if i == 1:
                seen["after"] = params(module, 1)
                seen["m"] = float(trainer.callback_metrics["train/ema_momentum"])

    # Two steps: the cosine schedule gives base_momentum at the first one (and 1.0 at the last).
    config = {**TINY, "max_steps": 2, "base_momentum": 0.9, "final_momentum": 1.0}
    run(PretrainConfig(out=str(tmp_path), **config), [Snapshot()])
    m = seen["m"]
    assert m == pytest.approx(0.9)
    changed = 0
    for xi, theta, new in zip(seen["target"], seen["online"], seen["after"], strict=True):
        assert torch.allclose(new, m * xi + (1 - m) * theta, rtol=1e-6, atol=1e-7)
        changed += int(not torch.equal(xi, theta))
    assert changed > 0  # the online network moved away from its copy, so the test can fail


def test_moco_queue_pointer_wraps_and_is_saved() -> None:
    loss = contrastive_loss(temperature=0.2, queue_size=6, dim=4)
    bank = loss.memory_bank
    generator = torch.Generator().manual_seed(0)
    keys = [torch.randn(3, 4, generator=generator) for _ in range(3)]
    pointers = []
    for k in keys:
        q = torch.randn(3, 4, requires_grad=True)
        loss(q, k)
        pointers.append(int(bank.bank_ptr))
    assert pointers == [3, 0, 3]
    normalized = [torch.nn.functional.normalize(k, dim=1) for k in keys]
    assert torch.allclose(bank.bank[0:3], normalized[2])  # the third batch wrapped to the start
    assert torch.allclose(bank.bank[3:6], normalized[1])
    state = loss.state_dict()
    assert {"memory_bank.bank", "memory_bank.bank_ptr"} <= set(state)
    fresh = contrastive_loss(temperature=0.2, queue_size=6, dim=4)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.memory_bank.bank, bank.bank) and int(fresh.memory_bank.bank_ptr) == 3


def test_moco_refuses_a_queue_that_would_drop_keys() -> None:
    with pytest.raises(SemprobeError, match="multiple of batch_size"):
        PretrainConfig(**{**TINY, "method": "mocov2plus", "queue_size": 100}).resolved()
    # The module checks the real number of keys per step (batch x processes) too.
    from semprobe.pretrain.train import build_module

    config = PretrainConfig(**{**TINY, "method": "mocov2plus"}).resolved()
    module = build_module(config, num_classes=100)
    views = torch.randn(24, 3, 32, 32)
    with pytest.raises(SemprobeError, match="not a multiple of the 24 keys"):
        module.ssl_step(views, views)


KILLED_RUN = textwrap.dedent(
    """
    import json, os, signal, sys
    import torch
    from lightning.pytorch import Callback
    from semprobe.pretrain import PretrainConfig, run

    torch.set_num_threads(1)

    class Kill(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.current_epoch == 2 and batch_idx == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    run(PretrainConfig(**json.loads(sys.argv[1])), [Kill()])
    """
)


def test_kill_and_resume_ends_exactly_where_an_uninterrupted_run_does(tmp_path: Path) -> None:
    import json

    # MoCo v2+ with SEM and LARS: EMA networks, queues, LARS momentum and the schedule all resume.
    config = {**TINY, "method": "mocov2plus", "optimizer": "lars", "seed": 3, "epochs": 3}
    whole = run(PretrainConfig(out=str(tmp_path / "whole"), **config))

    killed = {**config, "out": str(tmp_path / "killed")}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, json.dumps(killed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    checkpoints = sorted((tmp_path / "killed" / "checkpoints").glob("*.ckpt"))
    assert [p.name for p in checkpoints] == [f"step{2 * STEPS_PER_EPOCH:07d}.ckpt"]
    assert not (tmp_path / "killed" / "final.ckpt").exists()

    resumed = run(PretrainConfig(**killed, resume=str(checkpoints[0])))
    a, b = torch.load(whole, weights_only=True), torch.load(resumed, weights_only=True)
    assert a["global_step"] == b["global_step"] == 3 * STEPS_PER_EPOCH
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert any("memory_bank.bank" in k for k in a["state_dict"])
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for sa, sb in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for pa, pb in zip(sa["state"].values(), sb["state"].values(), strict=True):
            assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_nan_loss_stops_with_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = BYOL.ssl_step

    def poisoned(self: BYOL, view1: torch.Tensor, view2: torch.Tensor) -> Any:
        out = original(self, view1, view2)
        if self.global_step >= STEPS_PER_EPOCH + 2:  # after the first checkpoint
            return out._replace(loss=out.loss * float("nan"))
        return out

    monkeypatch.setattr(BYOL, "ssl_step", poisoned)
    with pytest.raises(NonFiniteLossError) as error:
        run(PretrainConfig(out=str(tmp_path), **TINY))
    message = str(error.value)
    assert "\n" not in message and "nan" in message and f"step {STEPS_PER_EPOCH + 2}" in message
    checkpoints = sorted((tmp_path / "checkpoints").glob("*.ckpt"))
    assert [p.name for p in checkpoints] == [f"step{STEPS_PER_EPOCH:07d}.ckpt"]
    assert not (tmp_path / "final.ckpt").exists()
    loaded = load_model(checkpoints[0])
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())


def _parser() -> argparse.ArgumentParser:
    return build_parser()


def _error(argv: list[str]) -> str:
    args = _parser().parse_args(["pretrain", *argv])
    with pytest.raises(SemprobeError) as error:
        args.handler(args)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--method", "simclr"], "unknown method 'simclr'"),
        (["--backbone", "vgg11"], "unknown backbone 'vgg11'"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--tau-online", "0"], "tau_online must be a positive"),
        (["--tau-target", "-1"], "tau_target must be a positive"),
        (["--online-taus", "0.1", "0"], "online_taus must be a positive"),
        (["--base-momentum", "1.5"], "base_momentum must be in [0, 1]"),
        (["--final-momentum", "-0.1"], "final_momentum must be in [0, 1]"),
        (["--base-momentum", "0.999", "--final-momentum", "0.99"], "may only grow"),
        (["--resume", "no/such/file.ckpt"], "no such checkpoint"),
        (["--optimizer", "rmsprop"], "unknown optimizer"),
        (["--precision", "8"], "unknown precision"),
        (["--batch-size", "1"], "batch_size must be at least 2"),
    ],
)
def test_bad_inputs_give_one_line_errors(argv: list[str], expected: str) -> None:
    assert expected in _error(["--dataset", "synthetic", *argv])


@pytest.mark.parametrize("trained", [("byol", True)], indirect=True, ids=_variant_id)
def test_resume_mismatch_is_refused_before_anything_is_written(trained: Any) -> None:
    out = trained["out"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    argv = ["--dataset", TINY["dataset"], "--backbone", "small_cnn", "--out", str(out)]
    argv += ["--resume", str(trained["path"]), "--num-simplices", "16", "--vocab", "4"]
    argv += ["--proj-hidden-dim", "64", "--pred-hidden-dim", "64", "--proj-dim", "32"]
    message = _error(argv)
    assert "L*V = 32 in the checkpoint vs 64 in the config" in message
    assert _error([*argv[:-10], "--method", "mocov2plus", "--batch-size", "32"]).count("method")
    # A fresh run into a directory that holds checkpoints is refused too.
    assert "already holds checkpoints" in _error(["--dataset", "synthetic", "--out", str(out)])
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_config_file_then_command_line(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('method = "mocov2plus"\nnum-simplices = 32\nvocab = 8\nlr = 0.5\n')
    yaml = tmp_path / "run.yaml"
    yaml.write_text("method: byol\nnum_simplices: 16\nonline_taus: [0.5, 2]\ndevices: 2\n")
    args = _parser().parse_args(["pretrain", "--config", str(toml), "--vocab", "5"])
    config = pretrain_config(args)
    assert (config.method, config.num_simplices, config.vocab, config.lr) == (
        "mocov2plus",
        32,
        5,
        0.5,
    )
    assert (config.optimizer, config.queue_size, config.final_momentum) == ("sgd", 32768, 0.999)
    assert load_config_file(yaml) == {
        "method": "byol",
        "num_simplices": 16,
        "online_taus": [0.5, 2],
        "devices": "2",
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: byol\nnum_simplexes: 3\nlearning_rate: 1\n")
    with pytest.raises(SemprobeError, match="unknown option\\(s\\) learning_rate, num_simplexes"):
        load_config_file(bad)
    bad.write_text("vocab: thirteen\n")
    with pytest.raises(SemprobeError, match="vocab = 'thirteen' has the wrong type"):
        load_config_file(bad)


def test_command_line_help_and_error_exit_codes() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "semprobe", "pretrain"]
    shown = subprocess.run([*cmd, "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    assert (
        "(default: byol 1.0, mocov2plus 0.3)" in text and "(default: 5000; 64 on synthetic)" in text
    )
    bad = subprocess.run(
        [*cmd, "--dataset", "synthetic", "--tau-online", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "semprobe: error: tau_online must be a positive finite number, got 0.0"
    ]


def test_gpu_check_cpu_smoke_reports_a_falling_loss(capsys: pytest.CaptureFixture[str]) -> None:
    from semprobe.pretrain import gpu_check

    assert gpu_check.main(["--cpu-smoke"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = lines[-1]
    assert summary.startswith("gpu_check OK on cpu (smoke): BYOL+SEM:")
    first, last = (float(x) for x in summary.split("loss ")[1].split(" -> "))
    assert last < first


def test_adamw_runs_get_a_classifier_rate_that_suits_adamw() -> None:
    from semprobe.pretrain.config import ADAMW_CLASSIFIER_LR, PretrainConfig

    lars = PretrainConfig(method="byol", dataset="synthetic").resolved()
    adamw = PretrainConfig(method="byol", dataset="synthetic", optimizer="adamw").resolved()
    given = PretrainConfig(
        method="byol", dataset="synthetic", optimizer="adamw", classifier_lr=0.05
    ).resolved()
    assert (lars.optimizer, lars.classifier_lr) == ("lars", 0.1)
    assert (adamw.optimizer, adamw.classifier_lr) == ("adamw", ADAMW_CLASSIFIER_LR)
    assert given.classifier_lr == 0.05


def test_views_share_matrix_products_but_not_batch_norm() -> None:
    from lightly.models.modules.heads import BYOLProjectionHead

    from semprobe.pretrain.views import forward_views

    torch.manual_seed(0)
    looped = BYOLProjectionHead(24, 16, 8).train()
    batched = copy.deepcopy(looped)
    views = [torch.randn(6, 24) * (i + 1) + i for i in range(2)]  # different statistics per view
    expected = [looped(v) for v in views]
    got = forward_views(batched, views)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e)
    sum(o.square().sum() for o in expected).backward()
    sum(o.square().sum() for o in got).backward()
    for (name, p_loop), p_batch in zip(
        looped.named_parameters(), batched.parameters(), strict=True
    ):
        torch.testing.assert_close(p_batch.grad, p_loop.grad, msg=name)
    # Running statistics took the same two per-view updates, in the same order.
    for b_loop, b_batch in zip(looped.buffers(), batched.buffers(), strict=True):
        torch.testing.assert_close(b_batch, b_loop)
    # Normalising the concatenated views instead would have given other outputs.
    pooled = copy.deepcopy(looped)(torch.cat(views))[:6]
    assert not torch.allclose(pooled, expected[0], atol=1e-3)
    with pytest.raises(TypeError, match="Conv2d is not known to act on each sample alone"):
        forward_views(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)), [torch.randn(1, 3, 2, 2)])


def test_lars_step_follows_the_clipped_trust_ratio_formula() -> None:
    from semprobe.pretrain.lars import LARS

    torch.manual_seed(0)
    weight, bias, zero = torch.randn(5, 3), torch.randn(5), torch.zeros(4)
    params = [t.clone().requires_grad_() for t in (weight, bias, zero)]
    lr, wd, eta, mu = 0.5, 1e-2, 0.02, 0.9
    optimizer = LARS(
        [
            {"params": [params[0], params[2]]},
            {"params": [params[1]], "lars": False, "weight_decay": 0},
        ],
        lr=lr,
        momentum=mu,
        weight_decay=wd,
        eta=eta,
    )
    grads = [[torch.randn_like(t) for t in (weight, bias, zero)] for _ in range(2)]
    expected = [weight.clone(), bias.clone(), zero.clone()]
    buffers: list[torch.Tensor | None] = [None, None, None]
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.clone()
        optimizer.step()
        for i, g in enumerate(step_grads):
            w = expected[i]
            # The lars=False group (no weight decay) and a zero weight take the plain gradient.
            if i == 1 or w.norm() == 0:
                update = g
            else:
                ratio = eta * w.norm() / (g.norm() + wd * w.norm() + 1e-8)
                update = (g + wd * w) * min(float(ratio) / lr, 1.0)
            buffers[i] = update.clone() if buffers[i] is None else mu * buffers[i] + update
            expected[i] = w - lr * buffers[i]
        for p, e in zip(params, expected, strict=True):
            torch.testing.assert_close(p.detach(), e)
