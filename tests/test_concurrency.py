"""Two ``semprobe relevance`` runs at once on one checkpoint and one feature cache: both finish
with identical results, each cache entry is written once, and no reader ever sees it half-written.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from semprobe.extraction import ExtractionOptions, load, open_split, transform_for
from semprobe.features import cache_key, entry_directory, open_cache
from semprobe.locks import holding
from semprobe.model import state_fingerprint
from tests.conftest import save_tiny

DATASET = "synthetic:train=3,test=1"


def test_concurrent_relevance_runs_share_the_cache(tmp_path: Path) -> None:
    ckpt = save_tiny(tmp_path / "m.pt")
    cache = tmp_path / "cache"
    options = ExtractionOptions(dataset=DATASET, cache_dir=cache, progress=False, verbose=False)
    model = load(ckpt, options).model
    images = open_split(options, "train")
    images.transform = transform_for(model.spec, options, images)
    train_entry = entry_directory(
        cache, cache_key(model, images, "float32", state_fingerprint(model))
    )

    argv = [sys.executable, "-m", "semprobe", "relevance", str(ckpt), "--dataset", DATASET]
    argv += ["--cache-dir", str(cache), "--quiet", "--batch-size", "16", "--epochs", "10"]
    argv += ["--permutations", "50", "--k", "3", "--k-max", "5"]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    runs = [tmp_path / "run-a", tmp_path / "run-b"]
    procs: list[subprocess.Popen[bytes]] = []
    waiting = f"waiting for feature cache {train_entry.name}: another process is writing it"
    try:
        # Hold the train entry first, so that both runs are certainly at the same door.
        with holding(train_entry, "feature cache"):
            for log, run in zip(logs, runs, strict=True):
                with open(log, "wb") as out:
                    procs.append(
                        subprocess.Popen([*argv, "--out", str(run)], stdout=out, stderr=out)
                    )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not all(
                waiting in log.read_text() for log in logs
            ):
                assert all(p.poll() is None for p in procs), [log.read_text() for log in logs]
                time.sleep(0.05)
            assert all(waiting in log.read_text() for log in logs)
        # Released: one run extracts, the other waits, then reads what it wrote. Meanwhile every
        # entry under its final name must open as complete, and none is ever replaced.
        half_written, inodes = [], {}
        while any(p.poll() is None for p in procs):
            for entry in (p for p in cache.iterdir() if not p.name.startswith(".")):
                try:
                    inode = entry.stat().st_ino
                except FileNotFoundError:
                    half_written.append(f"{entry.name} vanished")
                    continue
                if inodes.setdefault(entry.name, inode) != inode:
                    half_written.append(f"{entry.name} was replaced")
                if open_cache(entry) is None:
                    half_written.append(f"{entry.name} is incomplete")
            time.sleep(0.01)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert [p.returncode for p in procs] == [0, 0], [log.read_text() for log in logs]
    assert half_written == []
    final = sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))
    assert len(final) == 2 and train_entry.name in final  # train and test, each written once
    assert [p.name for p in cache.iterdir() if ".tmp-" in p.name] == []
    # Identical results: every table and summary, and the probe's weights.
    a, b = runs
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.suffix in (".csv", ".json"))
    assert "m/relevance/summary.json" in names and "m/relevance/curve.csv" in names
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    probes = [np.load(run / "m" / "relevance" / "probe.npz") for run in runs]
    np.testing.assert_array_equal(probes[0]["coef"], probes[1]["coef"])
    assert json.loads((a / "m" / "relevance" / "summary.json").read_text())["n_train"] == 300
