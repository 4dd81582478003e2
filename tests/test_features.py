"""The feature cache: reuse, invalidation, atomicity under SIGKILL, and bad cache directories."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from semprobe.checkpoint import load_model
from semprobe.data import eval_transform, open_dataset
from semprobe.errors import CacheError
from semprobe.features import extract_features, open_cache
from semprobe.model import SEMModel
from semprobe.sem import sem_softmax

DATASET = "synthetic:train=2,test=1"


def count_backbone_calls(model: SEMModel) -> list[int]:
    calls = [0]
    model.backbone.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_extraction_matches_forward_and_is_reused(tmp_path: Path, tiny_model: SEMModel) -> None:
    ds = open_dataset(DATASET, "train", transform=eval_transform())
    calls = count_backbone_calls(tiny_model)
    fs = extract_features(tiny_model, ds, tmp_path, batch_size=64, progress=False)
    assert calls[0] == 4  # 200 images / 64 per batch
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        feats, logits = tiny_model.features_and_logits(images)
    calls[0] = 4  # that reference forward pass is not the cache's
    np.testing.assert_allclose(fs.features, feats.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fs.logits, logits.numpy(), rtol=1e-5, atol=1e-5)
    manifest = json.loads((fs.directory / "manifest.json").read_text())
    assert manifest["key"]["dataset"] == ds.key and manifest["shapes"]["logits"] == [200, 40]
    assert manifest["dataset"]["class_names"] == ds.class_names

    again = extract_features(tiny_model, ds, tmp_path, batch_size=64, progress=False)
    assert calls[0] == 4 and again.directory == fs.directory

    # Any tau is applied to the cached logits, without the backbone.
    for tau in (0.01, 1.0, 10.0):
        expected = sem_softmax(logits, 8, 5, tau).numpy()
        np.testing.assert_allclose(again.sem(tau), expected, atol=1e-5)
    assert calls[0] == 4


def test_cache_is_invalidated_by_weights_dtype_and_split(
    tmp_path: Path, tiny_model: SEMModel
) -> None:
    ds = open_dataset(DATASET, "train", transform=eval_transform())
    first = extract_features(tiny_model, ds, tmp_path, progress=False)
    half = extract_features(tiny_model, ds, tmp_path, dtype="float16", progress=False)
    assert half.directory != first.directory and half.features.dtype == np.float16
    with torch.no_grad():
        tiny_model.embedder[0].weight.mul_(2)  # type: ignore[index]
    changed = extract_features(tiny_model, ds, tmp_path, progress=False)
    assert changed.directory != first.directory
    assert not np.allclose(changed.logits, first.logits)
    test = extract_features(
        tiny_model,
        open_dataset(DATASET, "test", transform=eval_transform()),
        tmp_path,
        progress=False,
    )
    assert test.directory != changed.directory and len(test.labels) == 100


def test_tampered_cache_is_not_taken_as_valid(tmp_path: Path, tiny_model: SEMModel) -> None:
    ds = open_dataset(DATASET, "train", transform=eval_transform())
    fs = extract_features(tiny_model, ds, tmp_path, progress=False)
    folder = fs.directory
    np.save(folder / "logits.npy", np.zeros((3, 40), dtype=np.float32))
    assert open_cache(folder, fs.manifest["key"]) is None
    redone = extract_features(tiny_model, ds, tmp_path, progress=False)
    assert redone.logits is not None and redone.logits.shape == (200, 40)


KILL_SCRIPT = """
import sys
from semprobe.checkpoint import load_model
from semprobe.data import eval_transform, open_dataset
from semprobe.features import extract_features
model = load_model(sys.argv[1]).model
ds = open_dataset("synthetic:train=20,test=1", "train", transform=eval_transform())
extract_features(model, ds, sys.argv[2], batch_size=8, progress=False)
print("finished")
"""


@pytest.mark.parametrize("delay", [0.0, 0.4])
def test_killed_extraction_leaves_no_valid_cache(
    tmp_path: Path, tiny_checkpoint: Path, delay: float
) -> None:
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tiny_checkpoint), str(cache)])
    deadline = time.time() + 60
    partial: list[Path] = []
    while time.time() < deadline and proc.poll() is None:
        partial = list(cache.glob(".*.tmp-*/features.npy")) if cache.exists() else []
        if partial and partial[0].stat().st_size > 4096:
            break
        time.sleep(0.05)
    assert partial, "the extraction never started writing"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Nothing under a final name, so nothing is taken as valid.
    assert [p for p in cache.iterdir() if not p.name.startswith(".")] == []

    model = load_model(tiny_checkpoint).model
    ds = open_dataset("synthetic:train=20,test=1", "train", transform=eval_transform())
    resumed = extract_features(model, ds, cache, batch_size=256, progress=False)
    fresh = extract_features(model, ds, tmp_path / "fresh", batch_size=256, progress=False)
    np.testing.assert_array_equal(resumed.logits, fresh.logits)
    # The killed run's temporary directory was cleaned up by the rerun.
    assert list(cache.glob(".*.tmp-*")) == []


def test_unwritable_cache_dir_is_a_clear_error(tmp_path: Path, tiny_model: SEMModel) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ds = open_dataset(DATASET, "test", transform=eval_transform())
    with pytest.raises(CacheError, match="cannot create directory"):
        extract_features(tiny_model, ds, blocker / "cache", progress=False)


def test_read_only_cache_dir(read_only_dir: Path, tiny_model: SEMModel) -> None:
    ds = open_dataset(DATASET, "test", transform=eval_transform())
    with pytest.raises(CacheError, match=r"not writable|Read-only"):
        extract_features(tiny_model, ds, read_only_dir, progress=False)


def test_full_disk_keeps_previous_cache_and_leaves_no_partial(
    tiny_tmpfs: Path, tiny_model: SEMModel
) -> None:
    small = open_dataset("synthetic:train=1,test=1", "test", transform=eval_transform())
    kept = extract_features(tiny_model, small, tiny_tmpfs, progress=False)
    before = kept.logits.copy()
    big = open_dataset("synthetic:train=1,test=20", "test", transform=eval_transform())
    with pytest.raises(CacheError, match="No space left"):
        extract_features(tiny_model, big, tiny_tmpfs, progress=False)
    assert list(tiny_tmpfs.glob(".*.tmp-*")) == []
    again = open_cache(kept.directory, kept.manifest["key"])
    assert again is not None
    np.testing.assert_array_equal(again.logits, before)


def test_bad_dtype_and_batch_size(tmp_path: Path, tiny_model: SEMModel) -> None:
    ds = open_dataset(DATASET, "test", transform=eval_transform())
    with pytest.raises(Exception, match="float64"):
        extract_features(tiny_model, ds, tmp_path, dtype="float64", progress=False)
    with pytest.raises(Exception, match="batch size"):
        extract_features(tiny_model, ds, tmp_path, batch_size=0, progress=False)
