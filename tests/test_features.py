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

from semprobe.atomic import atomic_directory
from semprobe.checkpoint import load_model
from semprobe.data import eval_transform, open_dataset
from semprobe.errors import CacheError
from semprobe.features import extract_features, open_cache
from semprobe.model import SEMModel
from semprobe.sem import sem_softmax
from tests.swap_kills import SWAP_KILL_PRELUDE

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
from semprobe.atomic import atomic_directory
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


def test_large_sem_outputs_are_written_once_to_the_cache(
    tmp_path: Path, tiny_model: SEMModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from semprobe import features

    ds = open_dataset(DATASET, "test", transform=eval_transform())
    fs = extract_features(tiny_model, ds, tmp_path, progress=False)
    in_memory = fs.sem(0.5)
    monkeypatch.setattr(features, "IN_MEMORY_LIMIT", 0)  # every result counts as large
    on_disk = fs.sem(0.5, chunk_rows=7)
    assert isinstance(on_disk, np.memmap) and on_disk.dtype == np.float16
    np.testing.assert_allclose(on_disk, in_memory, atol=1e-3)
    names = sorted(p.name for p in fs.directory.iterdir())
    assert "sem_tau0.5.npy" in names and not [n for n in names if n.startswith(".")]
    assert fs.sem(0.5).filename == on_disk.filename  # reused, not recomputed


# A child process that rebuilds a cache directory with atomic_directory and kills itself with
# SIGKILL at one chosen step of the swap: before building, after building, right after the
# exchange, or (without an exchange) between the two renames.
_KILL_CHILD = (
    SWAP_KILL_PRELUDE
    + r"""

with atomic.atomic_directory(final, tag="tmp") as work:
    (work / "manifest.json").write_text('{"complete": true, "version": "new"}')
    if step == "building":
        die()
"""
)


@pytest.mark.parametrize(
    ("step", "exchange"),
    [
        ("building", True),
        ("built", True),
        ("after-exchange", True),
        ("built", False),
        ("between-renames", False),
    ],
)
def test_a_killed_cache_rebuild_leaves_a_valid_cache(
    tiny_model: SEMModel, tmp_path: Path, step: str, exchange: bool
) -> None:
    dataset = open_dataset(DATASET, "test", transform=eval_transform())
    old = extract_features(tiny_model, dataset, tmp_path / "cache", progress=False)
    final, key = old.directory, old.manifest["key"]
    child = subprocess.run(
        [sys.executable, "-c", _KILL_CHILD, str(final), step, "1" if exchange else "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr  # the kill landed, mid-swap
    if step == "after-exchange":
        # The new directory is in place; the old one is left under a hidden name.
        assert '"new"' in (final / "manifest.json").read_text()
        return
    if step == "between-renames":
        # Without an exchange the final name is empty for a moment; the next writer restores it.
        assert not final.exists()
        with pytest.raises(RuntimeError, match="stop"), atomic_directory(final):
            raise RuntimeError("stop before building")
    reopened = open_cache(final, key)
    assert reopened is not None, "the old cache must still be valid under its name"
    np.testing.assert_array_equal(reopened.features, old.features)
    again = extract_features(tiny_model, dataset, tmp_path / "cache", progress=False)
    assert again.directory == final  # reused, not rebuilt
    leftovers = sorted(p.name for p in final.parent.iterdir() if p.name != final.name)
    assert all(name.startswith(".") for name in leftovers), leftovers


def test_a_changed_folder_is_a_new_cache_entry(tmp_path: Path, tiny_model: SEMModel) -> None:
    from semprobe.transforms import choose_transform
    from tests.imagegen import class_images, write_image

    root = tmp_path / "folder"
    class_images(root / "train" / "a", 3, seed=1)
    class_images(root / "test" / "a", 3, seed=2)
    transform = choose_transform(tiny_model.spec, None)  # resize and crop to 32

    def extract() -> object:
        ds = open_dataset(f"imagefolder:{root}", "test", transform=transform)
        return extract_features(tiny_model, ds, tmp_path / "cache", progress=False)

    first = extract()
    assert extract().directory == first.directory  # unchanged folder: reused
    victim = sorted((root / "test" / "a").iterdir())[0]
    victim.unlink()  # the same name, other pixels, same path and count
    write_image(root / "test" / "a", victim.stem, (90, 60), "RGB", seed=77)
    second = extract()
    assert second.directory != first.directory
    assert not np.allclose(second.features[0], first.features[0])
    np.testing.assert_array_equal(second.features[1:], first.features[1:])
