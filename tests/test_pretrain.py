"""Pre-training: tiny real runs of BYOL / MoCo v2+ (with and without SEM) on the CPU, the
configuration, the command line, ``last.ckpt`` and kill-and-resume.

Every run uses the built-in synthetic data set and the small CNN, so the whole file takes about a
minute on two cores. Runs use one intra-op thread: on a shared two-core machine two OpenMP threads
spin against each other and make each step several times slower. The other five methods are
tested in ``tests/test_methods.py``, distributed training in ``tests/test_ddp.py``.
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import subprocess
import sys
import time
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
from tests.pretrain_runs import (
    REPO,
    Recorder,
    assert_same_training_state,
    child_env,
    run_and_kill,
    tiny,
)

# 200 images, batches of 32: 6 steps per epoch.
DATA = {"dataset": "synthetic:train=2,test=1", "epochs": 4}
STEPS_PER_EPOCH = 6
VARIANTS = [("byol", True), ("byol", False), ("mocov2plus", True), ("mocov2plus", False)]


def _tiny(method: str = "byol", sem: bool = True, **changes: Any) -> dict[str, Any]:
    return tiny(method, sem, **{**DATA, **changes})


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _variant_id(variant: tuple[str, bool]) -> str:
    return f"{variant[0]}{'+sem' if variant[1] else ''}"


@pytest.fixture(scope="module", params=VARIANTS, ids=_variant_id)
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    method, sem = request.param
    out = tmp_path_factory.mktemp(f"{method}{int(sem)}")
    recorder = Recorder()
    path = run(PretrainConfig(out=str(out), **_tiny(method, sem)), [recorder])
    return {"method": method, "sem": sem, "path": path, "out": out, "recorder": recorder}


def test_runs_with_finite_falling_loss(trained: Any) -> None:
    losses = trained["recorder"].losses
    assert len(losses) == DATA["epochs"] * STEPS_PER_EPOCH
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
    step = f"step{DATA['epochs'] * STEPS_PER_EPOCH:07d}.ckpt"
    assert [p.name for p in periodic] == ["last.ckpt", step]
    # At the end, last.ckpt names the final checkpoint (a second name of the same file).
    assert os.path.samefile(periodic[0], trained["path"])
    for path in (trained["path"], periodic[1]):
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
    config = _tiny(max_steps=2, base_momentum=0.9, final_momentum=1.0)
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
        PretrainConfig(**_tiny("mocov2plus", queue_size=100)).resolved()
    # The module checks the real number of keys per step (batch x processes) too.
    from semprobe.pretrain.train import build_module

    config = PretrainConfig(**_tiny("mocov2plus")).resolved()
    module = build_module(config, num_classes=100)
    views = torch.randn(24, 3, 32, 32)
    with pytest.raises(SemprobeError, match="not a multiple of the 24 keys"):
        module.ssl_step(views, views)


def test_kill_and_resume_ends_exactly_where_an_uninterrupted_run_does(tmp_path: Path) -> None:
    # MoCo v2+ with SEM and LARS: EMA networks, queues, LARS momentum and the schedule all resume.
    config = _tiny("mocov2plus", optimizer="lars", seed=3, epochs=3)
    whole = run(PretrainConfig(**config, out=str(tmp_path / "whole")))

    killed = {**config, "out": str(tmp_path / "killed")}
    run_and_kill(killed, epoch=2, batch=2)
    checkpoints = sorted((tmp_path / "killed" / "checkpoints").glob("*.ckpt"))
    assert [p.name for p in checkpoints] == ["last.ckpt", f"step{2 * STEPS_PER_EPOCH:07d}.ckpt"]
    assert os.path.samefile(*checkpoints)

    resumed = run(PretrainConfig(**killed, resume=str(checkpoints[0])))
    state = assert_same_training_state(whole, resumed)
    assert state["global_step"] == 3 * STEPS_PER_EPOCH
    assert any("memory_bank.bank" in k for k in state["state_dict"])


def _write_toml(path: Path, options: dict[str, Any]) -> Path:
    def value(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else repr(v).replace("'", '"')

    path.write_text("".join(f"{k} = {value(v)}\n" for k, v in options.items()))
    return path


def _kill_when_last_checkpoint_appears(argv: list[str], last: Path) -> int:
    """Start ``semprobe pretrain`` and SIGKILL it as soon as ``last`` exists; its exit code."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "semprobe", "pretrain", *argv],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode in (-signal.SIGKILL, 0), stderr[-3000:]
    return proc.returncode


def test_readme_resume_of_last_ckpt_after_a_real_kill(tmp_path: Path) -> None:
    """``semprobe pretrain --config my.toml --resume OUT/checkpoints/last.ckpt`` (the README's
    command) after a SIGKILL from outside ends exactly where an uninterrupted run ends."""
    options = _tiny("byol", epochs=6, seed=5)
    whole = run(PretrainConfig(**options, out=str(tmp_path / "whole")))
    for attempt in range(3):  # the kill must land mid-run; a run that won already is drawn again
        out = tmp_path / f"killed{attempt}"
        toml = _write_toml(tmp_path / f"my{attempt}.toml", {**options, "out": str(out)})
        last = out / "checkpoints" / "last.ckpt"
        if _kill_when_last_checkpoint_appears(["--config", str(toml)], last) == -signal.SIGKILL:
            break
    else:
        pytest.fail("the run finished before the kill three times")
    assert not (out / "final.ckpt").exists()
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < killed_at < 6 * STEPS_PER_EPOCH and killed_at % STEPS_PER_EPOCH == 0
    assert not list(out.rglob(".*.tmp*")), "a temporary file survived the kill"

    from semprobe.cli import main

    assert main(["pretrain", "--config", str(toml), "--resume", str(last)]) == 0
    assert os.path.samefile(last, out / "final.ckpt")
    assert_same_training_state(whole, out / "final.ckpt")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--method", "byol", "--queue-size", "64"], "queue_size does not apply to byol (only"),
        (["--method", "simclr", "--num-prototypes", "10"], "num_prototypes does not apply to"),
        (["--method", "vicreg", "--base-momentum", "0.9"], "base_momentum does not apply to"),
        (["--method", "barlowtwins", "--temperature", "0.1"], "temperature does not apply to"),
        (["--method", "dino", "--scale-loss", "0.1"], "scale_loss does not apply to dino"),
        (["--method", "swav", "--num-prototypes", "0"], "num_prototypes must be a positive"),
        (["--method", "swav", "--queue-size", "100"], "queue_size 100 must be a multiple"),
        (["--method", "swav", "--queue-size", "-64"], "queue_size must be a non-negative"),
        (["--method", "dino", "--teacher-temperature", "0"], "teacher_temperature must be a"),
        (["--method", "dino", "--warmup-teacher-epochs", "-1"], "warmup_teacher_epochs must"),
        (["--method", "vicreg", "--var-loss-weight", "nan"], "var_loss_weight must be a non-neg"),
        (["--method", "barlowtwins", "--scale-loss", "0"], "scale_loss must be a positive"),
        (["--method", "simclr", "--temperature", "inf"], "temperature must be a positive"),
    ],
)
def test_method_options_are_checked_per_method(argv: list[str], expected: str) -> None:
    assert expected in _error(["--dataset", "synthetic", *argv])


def test_method_defaults_are_the_authors_scripts() -> None:
    """The values of the SEM authors' bash_files/pretrain/cifar/sd*.sh (see config's docstring)."""
    expected = {
        "simclr": (0.4, 0.17, 0.78, 1e-5, "lars"),
        "swav": (0.6, 0.85, 1.5, 1e-6, "lars"),
        "dino": (0.3, 1.0, 1.0, 1e-6, "lars"),
        "barlowtwins": (0.3, 1.0, 0.99, 1e-4, "lars"),
        "vicreg": (0.3, 1.0, 1.0, 1e-4, "lars"),
        "byol": (1.0, 1.0, 1.0, 1e-5, "lars"),
        "mocov2plus": (0.3, 1.0, 1.0, 1e-4, "sgd"),
    }
    for method, values in expected.items():
        cfg = PretrainConfig(method=method, dataset="cifar100").resolved()
        got = (cfg.lr, cfg.tau_online, cfg.tau_target, cfg.weight_decay, cfg.optimizer)
        assert got == values, method
        assert (cfg.backbone, cfg.batch_size, cfg.num_simplices, cfg.vocab) == (
            "resnet18",
            256,
            5000,
            13,
        )
    swav = PretrainConfig(method="swav").resolved()
    assert (swav.queue_size, swav.num_prototypes, swav.queue_start_epoch) == (3840, 3000, 50)
    dino = PretrainConfig(method="dino").resolved()
    assert (dino.base_momentum, dino.teacher_temperature, dino.num_prototypes) == (
        0.9995,
        0.07,
        4096,
    )
    barlow = PretrainConfig(method="barlowtwins").resolved()
    assert (barlow.barlow_lambda, barlow.scale_loss, barlow.proj_output_dim) == (0.0051, 0.1, 2048)
    # Resolving twice changes nothing (a resolved config holds no foreign option).
    assert PretrainConfig(**barlow.to_dict() | {"online_taus": (0.1,)}).resolved().lr == 0.3


def test_resuming_a_finished_run_with_more_epochs_trains_on(tmp_path: Path) -> None:
    """The resumed run follows its own, longer schedule, not the saved one (which ended at
    learning rate 0, so the weights would not move again)."""
    short = run(PretrainConfig(**_tiny(epochs=2), out=str(tmp_path / "run")))
    before = torch.load(short, weights_only=True)["state_dict"]["encoder.embedder.0.weight"]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    longer = run(PretrainConfig(**_tiny(epochs=3), out=str(tmp_path / "run"), resume=str(last)))
    after = torch.load(longer, weights_only=True)
    assert after["global_step"] == 3 * STEPS_PER_EPOCH
    assert not torch.equal(after["state_dict"]["encoder.embedder.0.weight"], before)
    schedule = after["lr_schedulers"][0]
    assert schedule["max_epochs"] == 3 * STEPS_PER_EPOCH  # the resumed run's length, in steps


def test_last_link_is_swapped_atomically_and_falls_back_to_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from semprobe.pretrain.checkpoint_io import link_atomically

    first, second, last = tmp_path / "a.ckpt", tmp_path / "b.ckpt", tmp_path / "last.ckpt"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    link_atomically(first, last)
    assert os.path.samefile(first, last)
    link_atomically(first, last)  # already a name of that file: nothing to do
    link_atomically(second, last)
    assert os.path.samefile(second, last) and first.read_bytes() == b"first"

    def no_hard_links(src: object, dst: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    link_atomically(first, last)  # a file system without hard links: a copy
    assert last.read_bytes() == b"first" and not os.path.samefile(first, last)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ckpt", "b.ckpt", "last.ckpt"]


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
        run(PretrainConfig(out=str(tmp_path), **_tiny()))
    message = str(error.value)
    assert "\n" not in message and "nan" in message and f"step {STEPS_PER_EPOCH + 2}" in message
    checkpoints = sorted((tmp_path / "checkpoints").glob("*.ckpt"))
    assert [p.name for p in checkpoints] == ["last.ckpt", f"step{STEPS_PER_EPOCH:07d}.ckpt"]
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
        (["--method", "simsiam"], "unknown method 'simsiam'; choose one of byol, mocov2plus,"),
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
    argv = ["--dataset", DATA["dataset"], "--backbone", "small_cnn", "--out", str(out)]
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
    assert "(default: byol 1.0, mocov2plus 0.3, simclr 0.4, barlowtwins 0.3, vicreg 0.3, " in text
    assert "(default: 5000; 64 on synthetic)" in text
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


def test_gpu_check_cpu_smoke_covers_every_method_with_a_falling_loss(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from semprobe.pretrain import gpu_check
    from semprobe.pretrain.config import METHODS

    assert gpu_check.main(["--cpu-smoke"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = lines[-1]
    assert summary.startswith(f"gpu_check OK on cpu (smoke): {len(METHODS)}/{len(METHODS)} ")
    measured = [line for line in lines if "+SEM: " in line and "images/s" in line]
    assert [line.split(":")[0] for line in measured] == [
        f"{gpu_check.NAMES[m]}+SEM" for m in METHODS
    ]
    for line in measured:
        first, last = (float(x) for x in line.split("loss ")[1].split(" -> "))
        assert last < first, line


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
