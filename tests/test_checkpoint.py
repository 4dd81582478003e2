"""Checkpoint loading: our format, the SEM authors' layout, baselines, and every refusal."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet18, resnet50

from semprobe.checkpoint import load_model, read_checkpoint, save_model
from semprobe.data import eval_transform, open_dataset
from semprobe.errors import CheckpointError
from semprobe.features import extract_features
from semprobe.model import SEMModel
from tests.imagegen import WNIDS, imagenet_tree

L, V = 6, 13


def authors_state_dict(seed: int = 0, sem: bool = True) -> dict[str, torch.Tensor]:
    """A state dict with the exact key layout of the SEM authors' solo-learn fork.

    Built with torchvision directly (not through semprobe) so that the test checks our loader
    against the layout, not against itself.
    """
    torch.manual_seed(seed)
    net = resnet18()
    net.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    net.maxpool = torch.nn.Identity()
    net.fc = torch.nn.Identity()
    # Non-trivial BatchNorm statistics so that eval-mode arithmetic is really exercised.
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = {f"backbone.{k}": v.clone() for k, v in net.state_dict().items()}
    state.update({f"momentum_backbone.{k}": v.clone() for k, v in net.state_dict().items()})
    if sem:
        state["embedder.0.weight"] = torch.randn(L * V, 512) * 0.05
        state["embedder.1.weight"] = torch.rand(L * V) + 0.5
        state["embedder.1.bias"] = torch.randn(L * V) * 0.1
        state["embedder.1.running_mean"] = torch.randn(L * V) * 0.1
        state["embedder.1.running_var"] = torch.rand(L * V) + 0.5
        state["embedder.1.num_batches_tracked"] = torch.tensor(100)
        state["momentum_embedder.0.weight"] = torch.randn(L * V, 512)
    state["projector.0.weight"] = torch.randn(16, L * V if sem else 512)
    state["predictor.0.weight"] = torch.randn(16, 16)
    state["classifier.weight"] = torch.randn(100, 512)
    state["classifier.bias"] = torch.zeros(100)
    return state


def write_authors_checkpoint(folder: Path, sem: bool = True, args: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "byol-sem.ckpt"
    torch.save({"epoch": 999, "global_step": 1, "state_dict": authors_state_dict(sem=sem)}, ckpt)
    default_args = {
        "method": "byol",
        "backbone": "resnet18",
        "dataset": "cifar100",
        "message_size": L,
        "voc_size": V,
        "tau_online": 0.1,
        "tau_target": 0.2,
        "batch_size": 256,
    }
    (folder / "args.json").write_text(json.dumps(args if args is not None else default_args))
    return ckpt


def independent_forward(state: dict[str, torch.Tensor], images: torch.Tensor):
    net = resnet18()
    net.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    net.maxpool = torch.nn.Identity()
    net.fc = torch.nn.Identity()
    net.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("backbone.")})
    net.eval()
    with torch.no_grad():
        feats = net(images)
        z = F.linear(feats, state["embedder.0.weight"])
        z = F.batch_norm(
            z,
            state["embedder.1.running_mean"],
            state["embedder.1.running_var"],
            state["embedder.1.weight"],
            state["embedder.1.bias"],
            training=False,
        )
    return feats, z


def test_our_format_round_trips(tiny_checkpoint: Path, tiny_model: SEMModel) -> None:
    loaded = load_model(tiny_checkpoint)
    assert loaded.source_format == "semprobe"
    assert loaded.spec == tiny_model.spec
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, tau=0.3), tiny_model(x, tau=0.3))
    # And the file really is weights-only loadable.
    assert "state_dict" in torch.load(tiny_checkpoint, weights_only=True)


def test_authors_checkpoint_extracts_the_same_logits_as_an_independent_forward(
    tmp_path: Path,
) -> None:
    ckpt = write_authors_checkpoint(tmp_path / "run")
    loaded = load_model(ckpt)
    assert loaded.source_format == "sem-authors"
    spec = loaded.spec
    assert (spec.num_simplices, spec.vocab, spec.backbone, spec.cifar_stem) == (
        L,
        V,
        "resnet18",
        True,
    )
    assert (spec.tau, spec.tau_target, spec.method, spec.dataset) == (0.1, 0.2, "byol", "cifar100")
    assert loaded.model.backbone.conv1.padding == (2, 2)
    assert (
        "classifier.weight" in loaded.ignored_keys and "projector.0.weight" in loaded.ignored_keys
    )

    ds = open_dataset("synthetic:train=1,test=1", "test", transform=eval_transform())
    fs = extract_features(loaded.model, ds, tmp_path / "cache", batch_size=32, progress=False)
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    feats, z = independent_forward(torch.load(ckpt, weights_only=True)["state_dict"], images)
    np.testing.assert_allclose(fs.features, feats.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fs.logits, z.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(fs.labels, ds.labels)


def test_plain_solo_learn_baseline_loads_without_args(tmp_path: Path) -> None:
    ckpt = tmp_path / "byol.ckpt"
    torch.save({"state_dict": authors_state_dict(sem=False)}, ckpt)
    loaded = load_model(ckpt)
    assert loaded.source_format == "solo-learn"
    assert not loaded.spec.has_sem and loaded.spec.cifar_stem
    assert loaded.model.embedder is None


def test_args_json_disagreeing_with_weights_is_refused(tmp_path: Path) -> None:
    ckpt = write_authors_checkpoint(
        tmp_path, args={"message_size": L + 1, "voc_size": V, "backbone": "resnet18"}
    )
    with pytest.raises(CheckpointError, match=r"L\*V = 7\*13 = 91 but embedder.0.weight has 78"):
        load_model(ckpt)


def test_sem_checkpoint_without_args_json_is_refused(tmp_path: Path) -> None:
    ckpt = write_authors_checkpoint(tmp_path)
    (tmp_path / "args.json").unlink()
    with pytest.raises(CheckpointError, match="message_size"):
        load_model(ckpt)


def test_missing_and_misshapen_keys_are_named(tmp_path: Path, tiny_model: SEMModel) -> None:
    state = {f"encoder.{k}": v for k, v in tiny_model.state_dict().items()}
    payload = {
        "semprobe_format": "semprobe-checkpoint",
        "semprobe_format_version": 1,
        "semprobe_spec": tiny_model.spec.to_dict(),
        "state_dict": state,
    }
    dropped = dict(state)
    del dropped["encoder.embedder.1.running_var"]
    torch.save({**payload, "state_dict": dropped}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r"missing keys embedder\.1\.running_var"):
        load_model(tmp_path / "a.pt")
    bad = dict(state)
    bad["encoder.embedder.0.weight"] = torch.zeros(3, 3)
    torch.save({**payload, "state_dict": bad}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match=r"embedder\.0\.weight has shape \[3, 3\]"):
        load_model(tmp_path / "b.pt")
    extra = {**state, "encoder.backbone.extra": torch.zeros(1)}
    torch.save({**payload, "state_dict": extra}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"unexpected keys backbone\.extra"):
        load_model(tmp_path / "c.pt")


class Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_pickled_object_checkpoint_is_refused_and_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "evil": Payload(str(marker))}, ckpt)
    # The message names the offending callable exactly (os.system is posix.system on Linux).
    with pytest.raises(CheckpointError, match=r"contains a pickled object \(posix\.system\) "):
        load_model(ckpt)
    assert not marker.exists()
    # With the explicit trust flag the file is unpickled (and the payload does run).
    with pytest.raises(CheckpointError):
        load_model(ckpt, trust=True)
    assert marker.exists()


def test_truncated_empty_and_foreign_files(tmp_path: Path, tiny_checkpoint: Path) -> None:
    data = tiny_checkpoint.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch checkpoint"):
        load_model(tmp_path / "trunc.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_model(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("hello, not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_model(tmp_path / "text.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "absent.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no backbone"):
        load_model(tmp_path / "other.pt")


def test_nan_weights_are_refused(tmp_path: Path, tiny_model: SEMModel) -> None:
    with torch.no_grad():
        tiny_model.embedder[0].weight[0, 0] = float("nan")  # type: ignore[index]
    save_model(tiny_model, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_model(tmp_path / "nan.pt")


def test_absurd_shapes_are_refused_before_allocating(tmp_path: Path) -> None:
    ckpt = tmp_path / "huge.pt"
    payload = {
        "semprobe_format": "semprobe-checkpoint",
        "semprobe_format_version": 1,
        "semprobe_spec": {"backbone": "resnet18", "num_simplices": 10**6, "vocab": 10**6},
        "state_dict": {},
    }
    torch.save(payload, ckpt)
    with pytest.raises(CheckpointError, match="larger than any model"):
        load_model(ckpt)


def test_newer_format_version_is_refused(tmp_path: Path, tiny_model: SEMModel) -> None:
    save_model(tiny_model, tmp_path / "m.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    raw["semprobe_format_version"] = 99
    torch.save(raw, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_model(tmp_path / "m.pt")


def test_read_checkpoint_plain_pickle(tmp_path: Path) -> None:
    path = tmp_path / "p.pt"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError):
        read_checkpoint(path)


# -- the SEM authors' ImageNet checkpoints: ResNet-50, 7x7 stem, V = 21 ---------------------------

IN_L, IN_V = 4, 21
# solo-learn's ImageNet T_val (classification_dataloader.py), written out here on purpose.
AUTHORS_IMAGENET_MEAN, AUTHORS_IMAGENET_STD = (0.485, 0.456, 0.406), (0.228, 0.224, 0.225)


def authors_resnet50_checkpoint(folder: Path, **args: object) -> Path:
    """A checkpoint in the authors' layout of an ImageNet sdbyol run, built with torchvision."""
    torch.manual_seed(1)
    net = resnet50()
    net.fc = torch.nn.Identity()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    width = IN_L * IN_V
    state = {f"backbone.{k}": v.clone() for k, v in net.state_dict().items()}
    state.update({f"momentum_backbone.{k}": v.clone() for k, v in net.state_dict().items()})
    state["embedder.0.weight"] = torch.randn(width, 2048) * 0.02
    state["embedder.1.weight"] = torch.rand(width) + 0.5
    state["embedder.1.bias"] = torch.randn(width) * 0.1
    state["embedder.1.running_mean"] = torch.randn(width) * 0.1
    state["embedder.1.running_var"] = torch.rand(width) + 0.5
    state["embedder.1.num_batches_tracked"] = torch.tensor(7)
    state["projector.0.weight"] = torch.randn(8, width)
    folder.mkdir(parents=True)
    torch.save({"epoch": 99, "state_dict": state}, folder / "sdbyol.ckpt")
    settings = {
        "method": "sdbyol",
        "backbone": "resnet50",
        "dataset": "imagenet",
        "message_size": IN_L,
        "voc_size": IN_V,
        "tau_online": 0.3,
        "tau_target": 0.8,
    }
    (folder / "args.json").write_text(json.dumps({**settings, **args}))
    return folder / "sdbyol.ckpt"


def torchvision_features(ckpt: Path, images: list, transform) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features and SEM logits by torchvision's resnet50 and F.linear/F.batch_norm."""
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    net = resnet50()
    net.fc = torch.nn.Identity()
    net.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("backbone.")})
    net.eval()
    with torch.no_grad():
        feats = net(torch.stack([transform(image) for image in images]))
        z = F.batch_norm(
            F.linear(feats, state["embedder.0.weight"]),
            state["embedder.1.running_mean"],
            state["embedder.1.running_var"],
            state["embedder.1.weight"],
            state["embedder.1.bias"],
            training=False,
        )
    return feats.numpy(), z.numpy()


def test_authors_resnet50_imagenet_checkpoint_matches_torchvision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchvision import transforms as T
    from torchvision.datasets.folder import pil_loader
    from torchvision.models import ResNet50_Weights

    from semprobe.extraction import ExtractionOptions, features

    files = imagenet_tree(tmp_path / "imagenet", per_class=1, val="kaggle")
    ckpt = authors_resnet50_checkpoint(tmp_path / "run")
    loaded = load_model(ckpt)
    spec = loaded.spec
    assert (spec.backbone, spec.cifar_stem, spec.num_simplices, spec.vocab, spec.tau) == (
        "resnet50",
        False,
        IN_L,
        IN_V,
        0.3,
    )
    assert spec.normalize == "authors-imagenet" and loaded.source_format == "sem-authors"
    assert loaded.model.backbone.conv1.kernel_size == (7, 7)
    assert isinstance(loaded.model.backbone.maxpool, torch.nn.MaxPool2d)

    options = ExtractionOptions(
        dataset=f"imagenet:{tmp_path / 'imagenet'}",
        cache_dir=tmp_path / "cache",
        batch_size=2,
        progress=False,
        verbose=True,
    )
    fs = features(loaded.model, options, "test")
    out = capsys.readouterr().out
    assert "ImageNet stem" in out and f"L={IN_L} V={IN_V} tau=0.3" in out
    assert "resize 256 (bilinear), centre-crop 224, normalise authors-imagenet" in out
    assert fs.transform.startswith("resize 256 (bilinear), centre-crop 224")
    images = [pil_loader(str(path)) for path, _ in files["val"]]
    np.testing.assert_array_equal(fs.labels, [WNIDS.index(w) for _, w in files["val"]])
    authors_val = T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(AUTHORS_IMAGENET_MEAN, AUTHORS_IMAGENET_STD),
        ]
    )
    feats, z = torchvision_features(ckpt, images, authors_val)
    np.testing.assert_allclose(fs.features, feats, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fs.logits, z, rtol=1e-4, atol=1e-4)

    # torchvision's standard ImageNet evaluation transform, asked for by name.
    standard = features(loaded.model, dataclasses.replace(options, normalize="imagenet"), "test")
    assert standard.directory != fs.directory  # the transform is part of the cache key
    feats, z = torchvision_features(ckpt, images, ResNet50_Weights.IMAGENET1K_V1.transforms())
    np.testing.assert_allclose(standard.features, feats, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(standard.logits, z, rtol=1e-4, atol=1e-4)


def test_authors_cifar_checkpoint_extracts_with_their_evaluation_constants(
    tmp_path: Path,
) -> None:
    from torchvision import transforms as T

    from semprobe.extraction import ExtractionOptions, features

    ckpt = write_authors_checkpoint(tmp_path / "run")
    loaded = load_model(ckpt)
    assert loaded.spec.normalize == "authors-cifar"
    options = ExtractionOptions(
        dataset="synthetic:train=1,test=1", cache_dir=tmp_path / "cache", progress=False
    )
    fs = features(loaded.model, options, "test")
    expected = "mean (0.4914, 0.4822, 0.4465) std (0.247, 0.243, 0.261)"
    assert fs.transform == f"no resize, normalise authors-cifar {expected}"
    ds = open_dataset("synthetic:train=1,test=1", "test")
    # main_linear's T_val for CIFAR: ToTensor and these constants, nothing else.
    t_val = T.Compose([T.ToTensor(), T.Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))])
    images = torch.stack([t_val(ds.load(i)) for i in range(len(ds))])
    feats, z = independent_forward(torch.load(ckpt, weights_only=True)["state_dict"], images)
    np.testing.assert_allclose(fs.features, feats.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fs.logits, z.numpy(), rtol=1e-4, atol=1e-4)


def test_missing_tau_online_is_a_warning_naming_the_tau(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = {"method": "byol", "backbone": "resnet18", "message_size": L, "voc_size": V}
    ckpt = write_authors_checkpoint(tmp_path / "run", args=args)
    with caplog.at_level("WARNING", logger="semprobe"):
        loaded = load_model(ckpt)
    assert loaded.spec.tau == 1.0
    messages = [r.getMessage() for r in caplog.records]
    assert any("has no tau_online: the model's tau is taken as 1" in m for m in messages), messages


def test_stem_disagreeing_with_args_dataset_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = {"backbone": "resnet18", "dataset": "imagenet100", "message_size": L, "voc_size": V}
    ckpt = write_authors_checkpoint(tmp_path / "run", args={**args, "tau_online": 0.1})
    with caplog.at_level("WARNING", logger="semprobe"):
        loaded = load_model(ckpt)
    assert loaded.spec.cifar_stem  # the weights decide
    assert any(
        "CIFAR stem (3x3 convolution)" in r.getMessage() and "'imagenet100'" in r.getMessage()
        for r in caplog.records
    )


def test_a_directory_and_a_3d_embedder_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint .* is a directory, not a file$"):
        load_model(tmp_path)
    # The authors' block-diagonal embedder (partsdbyol) stores a 3-D weight: its shape is named,
    # not read as a number of rows.
    ckpt = write_authors_checkpoint(tmp_path / "parts")
    raw = torch.load(ckpt, weights_only=True)
    raw["state_dict"]["embedder.0.weight"] = torch.randn(2, 39, 512)
    torch.save(raw, ckpt)
    with pytest.raises(CheckpointError, match=r"shape \(2, 39, 512\): a 3-D embedder"):
        load_model(ckpt)
