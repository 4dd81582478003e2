"""Every pre-training method, with and without SEM: tiny real CPU runs on the synthetic data.

Per method: the loss is finite and falls over a short run, the method's own state (EMA branch,
queues, prototypes, DINO's centre) is in the checkpoint, the checkpoint is analysed by
``semprobe relevance``, a run killed mid-epoch and resumed ends bit-identical to an uninterrupted
one, and checkpoints in the SEM authors' key layout of that method load. 100 images in batches
of 32 (3 steps per epoch), 8 epochs; the whole file takes a few minutes on two cores.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.models import resnet18

from semprobe.checkpoint import load_model
from semprobe.cli import main
from semprobe.pretrain import PretrainConfig, run
from semprobe.pretrain.augment import two_view_transform
from semprobe.pretrain.config import METHODS
from semprobe.pretrain.train import build_module
from tests.pretrain_runs import (
    METHOD_TINY,
    Recorder,
    assert_same_training_state,
    child_env,
    run_and_kill,
    tiny,
)

DATA = {"dataset": "synthetic:train=1,test=1", "epochs": 8}
STEPS_PER_EPOCH = 3
VARIANTS = [(m, sem) for m in METHODS for sem in (True, False)]


def _config(method: str, sem: bool, out: Path) -> dict[str, Any]:
    return tiny(method, sem, **DATA, out=str(out))


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _variant_id(variant: tuple[str, bool]) -> str:
    return f"{variant[0]}{'+sem' if variant[1] else ''}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], Any]:
    """Filled by ``trained``: every run of the module, for the test that reads them all."""
    return {}


@pytest.fixture(scope="module", params=VARIANTS, ids=_variant_id)
def trained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, runs: dict
) -> Any:
    method, sem = request.param
    out = tmp_path_factory.mktemp(_variant_id(request.param).replace("+", "-"))
    names = ("ssl_loss", "teacher_temperature") if method == "dino" else ("ssl_loss",)
    recorder = Recorder(*names)
    config = _config(method, sem, out)
    path = run(PretrainConfig(**config), [recorder])
    result = {"method": method, "sem": sem, "path": path, "config": config, "rec": recorder}
    runs[request.param] = result
    return result


def _falls(losses: list[float], start: int = 0) -> bool:
    """The mean of the last 6 steps is at least 2 % below that of the first 5 (from ``start``)."""
    first, last = float(np.mean(losses[start : start + 5])), float(np.mean(losses[-6:]))
    return last < first - 0.02 * abs(first)


def test_loss_is_finite_and_falls(trained: Any) -> None:
    losses = trained["rec"].values["ssl_loss"]
    assert len(losses) == DATA["epochs"] * STEPS_PER_EPOCH
    assert all(math.isfinite(x) for x in losses)
    if trained["method"] == "dino":
        # DINO's teacher follows its student (EMA), and in a run this short centring drives both
        # towards uniform outputs (the loss rises to log K, a known DINO behaviour on small data):
        # its falling loss is tested against a fixed teacher below. Here: the teacher
        # temperature took the warm-up schedule, epoch by epoch.
        temperatures = trained["rec"].values["teacher_temperature"]
        warmup = np.linspace(0.04, 0.07, METHOD_TINY["dino"]["warmup_teacher_epochs"]).tolist()
        expected = [(warmup[e] if e < len(warmup) else 0.07) for e in range(DATA["epochs"])]
        np.testing.assert_allclose(temperatures, np.repeat(expected, STEPS_PER_EPOCH), rtol=1e-6)
        return
    # MoCo's first step compares against the random initial queue, an easier task.
    assert _falls(losses, start=1 if trained["method"] == "mocov2plus" else 0), losses


@pytest.mark.parametrize("sem", [True, False], ids=["sem", "baseline"])
def test_dino_loss_falls_against_a_fixed_teacher(sem: bool, tmp_path: Path) -> None:
    """With the EMA momentum at 1 the teacher keeps its initial weights: what is left is DINO's
    student objective (the cross-entropy to the centred, sharpened teacher), which must fall."""
    recorder = Recorder("ssl_loss", "dino_kl")
    config = {**_config("dino", sem, tmp_path), "base_momentum": 1.0, "final_momentum": 1.0}
    run(PretrainConfig(**config), [recorder])
    assert all(math.isfinite(x) for x in recorder.losses)
    assert _falls(recorder.losses), recorder.losses
    assert _falls(recorder.values["dino_kl"]), recorder.values["dino_kl"]


def test_checkpoint_holds_the_encoder_and_the_method_state(trained: Any) -> None:
    module = trained["rec"].module.cpu().eval()
    loaded = load_model(trained["path"])
    assert (loaded.source_format, loaded.spec.method) == ("semprobe", trained["method"])
    cfg = PretrainConfig(**trained["config"]).resolved()
    if trained["sem"]:
        assert (loaded.spec.tau, loaded.spec.tau_target) == (cfg.tau_online, cfg.tau_target)
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(module.encoder(images), loaded.model(images))
    state = torch.load(trained["path"], weights_only=True)["state_dict"]
    method = trained["method"]
    expected = {
        "byol": ["momentum_encoder.backbone.", "momentum_projector.", "predictor."],
        "mocov2plus": ["momentum_encoder.", "criterion_1.memory_bank.bank"],
        "simclr": ["projector."],
        "barlowtwins": ["projector."],
        "vicreg": ["projector."],
        "swav": ["prototypes.heads.0.weight", "queue", "queue_filled"],
        "dino": ["momentum_encoder.", "momentum_head.last_layer.weight_v", "criterion.center"],
    }[method]
    for prefix in expected:
        assert any(k.startswith(prefix) for k in state), prefix
    assert any(k.startswith("momentum_encoder.") for k in state) == (
        method in ("byol", "mocov2plus", "dino")
    )
    if method == "swav":
        # The queue is full of unit-norm projections, newest first, of the last two steps.
        assert int(state["queue_filled"]) == 64
        norms = state["queue"].norm(dim=-1)
        torch.testing.assert_close(norms, torch.ones_like(norms))
    if method == "dino":
        assert state["criterion.center"].abs().sum() > 0  # the centre has moved from zero


@pytest.mark.parametrize("trained", [(m, True) for m in METHODS], indirect=True, ids=_variant_id)
def test_kill_and_resume_is_exact(trained: Any, tmp_path: Path) -> None:
    """Killed in epoch 5 (after the queue and DINO's warm-up have started), resumed from
    last.ckpt: the EMA, queues, prototypes, centre, optimiser and schedules all continue."""
    killed = {**trained["config"], "out": str(tmp_path / "killed")}
    run_and_kill(killed, epoch=5, batch=1)
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 5 * STEPS_PER_EPOCH
    resumed = run(PretrainConfig(**{**killed, "resume": str(last)}))
    assert_same_training_state(trained["path"], resumed)


def test_every_checkpoint_is_analysed_by_semprobe_relevance(
    runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if len(runs) < len(VARIANTS):
        pytest.skip("needs every variant trained (run the whole file)")
    paths = [str(runs[v]["path"]) for v in VARIANTS]
    argv = ["relevance", *paths, "--dataset", DATA["dataset"], "--out", str(tmp_path / "run")]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--permutations", "20", "--epochs", "3"]
    argv += ["--k", "2", "--k-max", "4", "--quiet", "--no-concepts"]
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "run" / "comparison.csv")
    assert len(table) == len(VARIANTS)
    for row in table.itertuples():
        info = json.loads((tmp_path / "run" / row.model / "model.json").read_text())
        variant = next(v for v in VARIANTS if str(runs[v]["path"]) == info["checkpoint"])
        assert info["spec"]["method"] == variant[0]
        tau = PretrainConfig(**runs[variant]["config"]).resolved().tau_online
        assert row.features == (f"sem@tau={tau:g}" if variant[1] else "backbone")
        assert math.isfinite(row.relevance_mean) and math.isfinite(row.z)


def _augmentations(view: Any) -> dict[str, Any]:
    """Crop scale, jitter ranges, blur and solarisation probabilities of one lightly view."""
    from lightly.transforms.gaussian_blur import GaussianBlur
    from lightly.transforms.solarize import RandomSolarization
    from torchvision.transforms import v2 as T

    found: dict[str, Any] = {"solarize": 0.0}
    for step in view.transform.transforms:
        if isinstance(step, T.RandomResizedCrop):
            found["scale"] = tuple(step.scale)
        elif isinstance(step, T.RandomApply) and isinstance(step.transforms[0], T.ColorJitter):
            jitter = step.transforms[0]
            ranges = (jitter.brightness, jitter.contrast, jitter.saturation)
            found["jitter"] = (*(round(r[1] - 1, 3) for r in ranges), round(jitter.hue[1], 3))
        elif isinstance(step, GaussianBlur):
            found["blur"] = step.prob
        elif isinstance(step, RandomSolarization):
            found["solarize"] = step.prob
    return found


# The authors' scripts: --brightness --contrast --saturation --hue, --min_scale, solarisation of
# views 1 and 2 (bash_files/pretrain/cifar/sd*.sh); --gaussian_prob 0.0 0.0 everywhere.
AUGMENTATIONS = {
    "byol": ((0.4, 0.4, 0.2, 0.1), 0.08, (0.0, 0.2)),
    "barlowtwins": ((0.4, 0.4, 0.2, 0.1), 0.08, (0.0, 0.2)),
    "dino": ((0.4, 0.4, 0.2, 0.1), 0.08, (0.0, 0.2)),
    "mocov2plus": ((0.4, 0.4, 0.4, 0.1), 0.08, (0.0, 0.0)),
    "simclr": ((0.8, 0.8, 0.8, 0.2), 0.08, (0.0, 0.0)),
    "swav": ((0.8, 0.8, 0.8, 0.2), 0.08, (0.0, 0.0)),
    "vicreg": ((0.4, 0.4, 0.2, 0.1), 0.2, (0.1, 0.1)),
}


@pytest.mark.parametrize("method", METHODS)
def test_two_view_transform_follows_the_authors_script(method: str) -> None:
    from PIL import Image

    transform = two_view_transform(method)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8))
    views = transform(image)
    assert [tuple(v.shape) for v in views] == [(3, 32, 32), (3, 32, 32)]
    assert not torch.equal(views[0], views[1])
    jitter, min_scale, solarize = AUGMENTATIONS[method]
    settings = [_augmentations(view) for view in transform.transforms]
    for setting, solarize_prob in zip(settings, solarize, strict=True):
        assert setting["jitter"] == jitter
        assert setting["scale"] == (min_scale, 1.0)
        assert setting["blur"] == 0.0
        assert setting["solarize"] == solarize_prob


def test_swav_queue_keeps_the_newest_projections_and_starts_on_time() -> None:
    cfg = PretrainConfig(**tiny("swav", queue_size=64, queue_start_epoch=0)).resolved()
    module = build_module(cfg, num_classes=10)
    assert module.queue_outputs() is None  # nothing queued yet
    batches = [torch.nn.functional.normalize(torch.randn(2, 32, 32), dim=-1) for _ in range(3)]
    for z in batches:
        module.enqueue(z[0], z[1])
    assert int(module.queue_filled) == 64
    assert torch.equal(module.queue[:, :32], torch.stack([batches[2][0], batches[2][1]]))
    assert torch.equal(module.queue[:, 32:], torch.stack([batches[1][0], batches[1][1]]))
    scores = module.queue_outputs()
    assert scores is not None and [tuple(s.shape) for s in scores] == [(64, 20), (64, 20)]
    late = build_module(dataclasses.replace(cfg, queue_start_epoch=3), num_classes=10)
    late.enqueue(batches[0][0], batches[0][1])
    assert late.queue_outputs() is None  # epoch 0 < queue_start_epoch


def test_dino_teacher_temperature_schedule_is_linear_then_constant() -> None:
    cfg = PretrainConfig(method="dino", dataset="synthetic", warmup_teacher_epochs=4).resolved()
    module = build_module(cfg, num_classes=10)
    got = [module.teacher_temperature_at(e) for e in range(6)]
    np.testing.assert_allclose(got, [0.04, 0.05, 0.06, 0.07, 0.07, 0.07], rtol=1e-6)


def test_bad_method_name_and_option_exit_2_with_one_line() -> None:
    for argv, message in (
        (["--method", "simsiam"], "semprobe: error: unknown method 'simsiam'; choose one of "),
        (["--method", "swav", "--pred-hidden-dim", "8"], "semprobe: error: pred_hidden_dim"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "semprobe", "pretrain", "--dataset", "synthetic", *argv],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), proc.stderr


# -- the SEM authors' checkpoints of every method --------------------------------------------

AUTHORS_L, AUTHORS_V = 6, 13
# The heads each of the authors' methods saves beside backbone.* and embedder.* (their names
# in solo/methods/sd*.py); the analysis reads only backbone.* and embedder.*.
AUTHORS_HEADS: dict[str, dict[str, tuple[int, ...]]] = {
    "sdbyol": {
        "projector.0.weight": (32, 0),
        "momentum_projector.0.weight": (32, 0),
        "predictor.0.weight": (16, 16),
        "momentum_embedder.0.weight": (78, 512),
        "momentum_classifier.weight": (100, 512),
    },
    "sdmoco": {
        "projector.0.weight": (32, 0),
        "momentum_projector.0.weight": (32, 0),
        "momentum_embedder.0.weight": (78, 512),
        "queue": (2, 16, 64),
        "queue_ptr": (1,),
    },
    "sdsimclr": {"projector.0.weight": (32, 0), "projector.2.weight": (16, 32)},
    "sdbarlow": {"projector.0.weight": (32, 0), "projector.6.weight": (32, 32)},
    "sdvicreg": {"projector.0.weight": (32, 0), "projector.6.weight": (32, 32)},
    "sdswav": {
        "projector.0.weight": (32, 0),
        "prototypes.weight_g": (30, 1),
        "prototypes.weight_v": (30, 16),
        "queue": (2, 64, 16),
    },
    "sddino": {
        "head.mlp.0.weight": (32, 0),
        "head.last_layer.weight_g": (40, 1),
        "head.last_layer.weight_v": (40, 16),
        "momentum_head.mlp.0.weight": (32, 0),
        "momentum_embedder.0.weight": (78, 512),
        "dino_loss_func.center": (1, 40),
    },
}
AUTHORS_TAUS = {
    "sdbyol": (1.0, 1.0),
    "sdmoco": (0.04, 0.01),
    "sdsimclr": (0.17, 0.78),
    "sdbarlow": (1.0, 0.99),
    "sdvicreg": (1.0, None),
    "sdswav": (0.85, 1.5),
    "sddino": (1.0, 1.0),
}
# Their baselines: the same methods without SEM (solo-learn's names).
BASELINES = {
    "sdbyol": "byol",
    "sdmoco": "mocov2plus",
    "sdsimclr": "simclr",
    "sdbarlow": "barlow_twins",
    "sdvicreg": "vicreg",
    "sdswav": "swav",
    "sddino": "dino",
}


def _authors_checkpoint(folder: Path, method: str, sem: bool) -> dict[str, torch.Tensor]:
    """A checkpoint with the authors' key layout of ``method``, built with torchvision only."""
    torch.manual_seed(len(method))
    net = resnet18()
    net.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    net.maxpool, net.fc = torch.nn.Identity(), torch.nn.Identity()
    state = {f"backbone.{k}": v.clone() for k, v in net.state_dict().items()}
    width = AUTHORS_L * AUTHORS_V
    if sem:
        state["embedder.0.weight"] = torch.randn(width, 512) * 0.05
        state["embedder.1.weight"] = torch.rand(width) + 0.5
        state["embedder.1.bias"] = torch.randn(width) * 0.1
        state["embedder.1.running_mean"] = torch.randn(width) * 0.1
        state["embedder.1.running_var"] = torch.rand(width) + 0.5
        state["embedder.1.num_batches_tracked"] = torch.tensor(7)
        state.update({f"linears_y.{i}.weight": torch.randn(100, width) for i in range(2)})
    if method in ("sdbyol", "sdmoco", "sddino"):
        state.update({f"momentum_backbone.{k}": v.clone() for k, v in net.state_dict().items()})
    for key, shape in AUTHORS_HEADS[method].items():
        if "embedder" in key and not sem:
            continue
        # 0 stands for the projector's input: L*V with SEM, the backbone's 512 without.
        full = tuple((width if sem else 512) if s == 0 else s for s in shape)
        state[key] = torch.randn(full)
    state["classifier.weight"] = torch.randn(100, 512)
    state["classifier.bias"] = torch.zeros(100)
    folder.mkdir(parents=True)
    torch.save({"epoch": 999, "global_step": 10, "state_dict": state}, folder / "last.ckpt")
    args: dict[str, Any] = {
        "method": method if sem else BASELINES[method],
        "backbone": "resnet18",
        "dataset": "cifar100",
    }
    if sem:
        tau_online, tau_target = AUTHORS_TAUS[method]
        args |= {"message_size": AUTHORS_L, "voc_size": AUTHORS_V, "tau_online": tau_online}
        if tau_target is not None:  # sdvicreg has no tau_target argument
            args["tau_target"] = tau_target
    (folder / "args.json").write_text(json.dumps(args))
    return state


@pytest.mark.parametrize("sem", [True, False], ids=["sem", "baseline"])
@pytest.mark.parametrize("method", list(AUTHORS_HEADS))
def test_authors_checkpoint_layout_of_every_method_loads(
    method: str, sem: bool, tmp_path: Path
) -> None:
    state = _authors_checkpoint(tmp_path / method, method, sem)
    loaded = load_model(tmp_path / method / "last.ckpt")
    assert loaded.source_format == ("sem-authors" if sem else "solo-learn")
    assert loaded.spec.method == (method if sem else BASELINES[method])
    assert loaded.spec.backbone == "resnet18" and loaded.spec.cifar_stem
    if sem:
        tau_online, tau_target = AUTHORS_TAUS[method]
        assert (loaded.spec.num_simplices, loaded.spec.vocab) == (AUTHORS_L, AUTHORS_V)
        assert (loaded.spec.tau, loaded.spec.tau_target) == (
            tau_online,
            tau_online if tau_target is None else tau_target,
        )
    else:
        assert not loaded.spec.has_sem
    # The analysed weights are exactly the backbone and embedder; every head is ignored.
    weights = loaded.model.state_dict()
    analysed = {k for k in state if k.startswith(("backbone.", "embedder."))}
    assert set(weights) == analysed
    for key in analysed:
        assert torch.equal(weights[key], state[key].float()), key
    assert set(loaded.ignored_keys) == set(state) - analysed
    assert set(AUTHORS_HEADS[method]) - {"momentum_embedder.0.weight"} <= set(loaded.ignored_keys)
