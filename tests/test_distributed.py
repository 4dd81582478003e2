"""Sharded extraction under torchrun: two gloo processes on the CPU write the single process's
cache byte for byte, a killed rank leaves no valid cache, and relevance runs the same way."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from semprobe.features import open_cache
from semprobe.shards import shard_rows
from tests.conftest import save_tiny

DATASET = "synthetic:train=2,test=1"
# Bitwise equality needs the same kernels: one thread each, as torchrun's default.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
SEMPROBE = [sys.executable, "-m", "semprobe"]


def run(argv: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=timeout)


def entries(cache: Path) -> dict[str, Path]:
    """The cache's entries (hidden names are temporary directories and locks)."""
    return {p.name: p for p in cache.iterdir() if not p.name.startswith(".")}


def assert_identical(one: Path, two: Path) -> None:
    assert sorted(entries(one)) == sorted(entries(two))
    for name, folder in entries(one).items():
        files = sorted(p.name for p in folder.iterdir())
        assert files == sorted(p.name for p in (two / name).iterdir())
        for file in files:
            assert (folder / file).read_bytes() == (two / name / file).read_bytes(), file


def test_shards_are_runs_of_whole_batches() -> None:
    for rows, batch, world in ((200, 24, 2), (7, 3, 4), (10, 100, 3), (0, 8, 2)):
        shards = [shard_rows(rows, batch, world, r) for r in range(world)]
        assert shards[0][0] == 0 and shards[-1][1] == rows
        assert all(a[1] == b[0] for a, b in itertools.pairwise(shards))
        # Each starts on a batch boundary (an empty shard, at the end).
        assert all(start % batch == 0 or start == rows for start, _ in shards)


def test_two_gloo_processes_write_the_single_process_cache(tmp_path: Path) -> None:
    ckpt = save_tiny(tmp_path / "m.pt")
    common = ["extract", str(ckpt), "--dataset", DATASET, "--batch-size", "24", "--quiet"]
    two = run([*TORCHRUN, "-m", "semprobe", *common, "--cache-dir", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    # 200 rows in batches of 24: rank 0 takes five batches, rank 1 the other 80 rows.
    assert "extract train: 200 images over 2 processes" in two.stdout
    assert "extract test: 100 images over 2 processes" in two.stdout
    assert two.stdout.count("train: 200 images, features 128") == 1  # rank 0 reports alone
    one = run([*SEMPROBE, *common, "--cache-dir", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    assert len(entries(tmp_path / "one")) == 2
    assert_identical(tmp_path / "one", tmp_path / "two")


def _rank(launcher: psutil.Process, rank: str) -> psutil.Process | None:
    for child in launcher.children(recursive=True):
        try:
            if child.environ().get("RANK") == rank and "semprobe" in " ".join(child.cmdline()):
                return child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def test_a_killed_rank_leaves_no_valid_cache(tmp_path: Path) -> None:
    ckpt = save_tiny(tmp_path / "m.pt")
    cache = tmp_path / "cache"
    argv = [*TORCHRUN, "-m", "semprobe", "extract", str(ckpt), "--splits", "train"]
    argv += ["--dataset", "synthetic:train=30,test=1", "--batch-size", "8", "--quiet"]
    launcher = subprocess.Popen(
        [*argv, "--cache-dir", str(cache)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline, worker, work = time.monotonic() + 120, None, []
        while time.monotonic() < deadline and launcher.poll() is None and not work:
            worker = worker or _rank(psutil.Process(launcher.pid), "1")
            work = list(cache.glob(".*.tmp-*/features.npy")) if cache.exists() else []
            time.sleep(0.05)
        assert worker is not None and work, "the sharded extraction never started"
        time.sleep(0.5)  # rank 1 is receiving the weights or extracting its 1,500 rows
        assert entries(cache) == {}, "the extraction finished before the kill"
        os.kill(worker.pid, signal.SIGKILL)
        output = launcher.communicate(timeout=120)[0]
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    assert launcher.returncode != 0
    assert f"Signal 9 (SIGKILL) received by PID {worker.pid}" in output, output[-3000:]
    # Nothing under a final name; whatever is left is hidden and never opens as a cache.
    assert entries(cache) == {}
    assert all(open_cache(p) is None for p in cache.iterdir() if p.is_dir())


def test_relevance_under_torchrun_equals_one_process(tmp_path: Path) -> None:
    ckpt = save_tiny(tmp_path / "m.pt")
    argv = ["relevance", str(ckpt), "--dataset", DATASET, "--batch-size", "32", "--quiet"]
    argv += ["--epochs", "5", "--permutations", "20", "--k", "2", "--k-max", "3"]
    # The random-init twin (seed 1) is a second model whose weights travel to rank 1.
    argv += ["--reference", "random-init", "--seed", "1", "--no-concepts"]
    out = ["--cache-dir", str(tmp_path / "c2"), "--out", str(tmp_path / "r2")]
    two = run([*TORCHRUN, "-m", "semprobe", *argv, *out])
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("images over 2 processes") == 4  # train and test of both models
    one = run(
        [*SEMPROBE, *argv, "--cache-dir", str(tmp_path / "c1"), "--out", str(tmp_path / "r1")]
    )
    assert one.returncode == 0, one.stderr
    assert len(entries(tmp_path / "c1")) == 4
    assert_identical(tmp_path / "c1", tmp_path / "c2")
    for model in ("m", "m-random-init"):
        a = json.loads((tmp_path / "r1" / model / "relevance" / "summary.json").read_text())
        b = json.loads((tmp_path / "r2" / model / "relevance" / "summary.json").read_text())
        assert a == b
        coef = [
            np.load(tmp_path / r / model / "relevance" / "probe.npz")["coef"] for r in ("r1", "r2")
        ]
        np.testing.assert_array_equal(*coef)


@pytest.mark.parametrize("world", ["1", "x"])
def test_launcher_environment(monkeypatch: pytest.MonkeyPatch, world: str) -> None:
    from semprobe.distributed import launcher_environment
    from semprobe.errors import SemprobeError

    monkeypatch.setenv("WORLD_SIZE", world)
    if world == "1":
        assert launcher_environment() is None
    else:
        with pytest.raises(SemprobeError, match="bad distributed environment"):
            launcher_environment()


def test_a_worker_s_error_is_the_leader_s_one_line(tmp_path: Path) -> None:
    from tests.imagegen import class_images, truncate

    root = tmp_path / "folder"
    class_images(root / "train" / "a", 4, seed=1)
    broken = truncate(class_images(root / "train" / "b", 4, seed=2)[1])  # in rank 1's rows
    class_images(root / "test" / "a", 1, seed=3)
    ckpt = save_tiny(tmp_path / "m.pt")
    argv = ["extract", str(ckpt), "--dataset", f"imagefolder:{root}", "--splits", "train"]
    argv += ["--batch-size", "2", "--quiet", "--cache-dir", str(tmp_path / "cache")]
    done = run([*TORCHRUN, "-m", "semprobe", *argv])
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("semprobe: error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert errors[0].startswith(f"semprobe: error: rank 1: cannot read image {broken}: ")
    assert entries(tmp_path / "cache") == {}
