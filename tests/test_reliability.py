"""Cross-cutting reliability: SIGKILL at random points, full and read-only disks, fuzzed parsers.

Each test names the guarantee of docs/reliability.md that it checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from semprobe.checkpoint import load_model
from semprobe.errors import SemprobeError
from tests.conftest import REPO, save_tiny
from tests.test_pretrain import TINY

DATASET = "synthetic:train=3,test=2"
TINY_PRETRAIN: dict[str, Any] = {
    **TINY,
    "method": "byol",
    "epochs": 3,
    "seed": 5,
    # CPU float reductions depend on the thread count: exact resumes need the same one.
    "threads": 1,
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _kill_after(argv: list[str], delay: float) -> int:
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


RELEVANCE = [
    "-m",
    "semprobe",
    "relevance",
    "--dataset",
    DATASET,
    "--k",
    "3",
    "--k-max",
    "4",
    "--permutations",
    "50",
    "--epochs",
    "10",
    "--quiet",
]


def test_killed_relevance_runs_leave_nothing_valid_and_rerun_identically(tmp_path: Path) -> None:
    """Guarantee: a killed run never leaves a run directory that opens as valid."""
    from semprobe.rundir import Run

    ckpt = save_tiny(tmp_path / "m.pt", seed=7)
    cache = str(tmp_path / "cache")
    reference = tmp_path / "reference"
    subprocess.run(
        [sys.executable, *RELEVANCE, str(ckpt), "--cache-dir", cache, "--out", str(reference)],
        env=ENV,
        check=True,
        capture_output=True,
    )
    rng = random.Random(0)
    for attempt in range(3):
        out = tmp_path / f"killed{attempt}"
        code = _kill_after(
            [sys.executable, *RELEVANCE, str(ckpt), "--cache-dir", cache, "--out", str(out)],
            rng.uniform(0.5, 6.0),
        )
        assert code in (0, -signal.SIGKILL)
        if out.exists():
            # Killed (or finished) after the rename: the run is complete and opens.
            Run(out)
        else:
            with pytest.raises(SemprobeError):
                Run(out)
            subprocess.run(
                [sys.executable, *RELEVANCE, str(ckpt), "--cache-dir", cache, "--out", str(out)],
                env=ENV,
                check=True,
                capture_output=True,
            )
        for name in ("summary.json", "probe.npz", "curve.csv"):
            assert (out / "m" / "relevance" / name).read_bytes() == (
                reference / "m" / "relevance" / name
            ).read_bytes()


KILLED_PRETRAIN = """
import json, sys
from semprobe.pretrain import PretrainConfig, run
run(PretrainConfig(**json.loads(sys.argv[1])))
"""


def test_pretraining_killed_at_random_points_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """Guarantee: every checkpoint on disk is complete; resuming ends as an uninterrupted run."""
    from semprobe.pretrain import PretrainConfig, run

    whole = run(PretrainConfig(**{**TINY_PRETRAIN, "out": str(tmp_path / "whole")}))
    expected = torch.load(whole, weights_only=True)["state_dict"]
    rng = random.Random(1)
    for attempt in range(2):
        config = {**TINY_PRETRAIN, "out": str(tmp_path / f"killed{attempt}")}
        code = _kill_after(
            [sys.executable, "-c", KILLED_PRETRAIN, json.dumps(config)], rng.uniform(4.0, 12.0)
        )
        checkpoints = sorted((tmp_path / f"killed{attempt}" / "checkpoints").glob("*.ckpt"))
        for path in checkpoints:  # whatever is there under a final name loads completely
            load_model(path)
        if code == 0:
            continue
        resume = str(checkpoints[-1]) if checkpoints else None
        if resume is None:  # killed before the first checkpoint: start again from scratch
            import shutil

            shutil.rmtree(tmp_path / f"killed{attempt}", ignore_errors=True)
        final = run(PretrainConfig(**config, resume=resume))
        got = torch.load(final, weights_only=True)["state_dict"]
        for key, value in expected.items():
            assert torch.equal(value, got[key]), key


def test_checkpoint_write_on_a_full_disk_keeps_the_previous_one(tiny_tmpfs: Path) -> None:
    """Guarantee: a failed checkpoint write leaves the previous checkpoint intact."""
    from semprobe.model import ModelSpec
    from semprobe.pretrain.checkpoint_io import SemprobeCheckpointIO

    spec = ModelSpec("small_cnn", num_simplices=8, vocab=4)
    io = SemprobeCheckpointIO(spec, {})
    small = {"encoder.embedder.0.weight": torch.ones(32, 128)}  # 16 KB: fits the 256 KiB disk
    path = tiny_tmpfs / "last.ckpt"
    io.save_checkpoint({"state_dict": small, "epoch": 1}, path)
    before = path.read_bytes()
    huge = {**small, "extra": torch.zeros(1_000_000)}  # 4 MB on a 256 KiB disk
    with pytest.raises(SemprobeError, match="No space left"):
        io.save_checkpoint({"state_dict": huge, "epoch": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tiny_tmpfs.iterdir()] == ["last.ckpt"]
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == 1
    assert saved["semprobe_spec"] == spec.to_dict()


def test_relevance_into_a_read_only_directory(read_only_dir: Path, tmp_path: Path) -> None:
    from semprobe.analysis import RelevanceSettings
    from semprobe.extraction import ExtractionOptions
    from semprobe.studies import run_relevance

    ckpt = save_tiny(tmp_path / "m.pt")
    options = ExtractionOptions(dataset=DATASET, cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(SemprobeError, match=r"not writable|Read-only"):
        run_relevance([ckpt], options, RelevanceSettings(k=2, epochs=2), read_only_dir / "run")


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=200))
def test_superclass_csv_parsing_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    """Fuzzed CSV: a mapping for every class, or one SemprobeError; never anything else."""
    from semprobe.wordnet import read_superclass_csv

    path = tmp_path_factory.mktemp("csv") / "s.csv"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        mapping = read_superclass_csv(path, ["a", "b"])
    except SemprobeError as exc:
        message = str(exc).strip()
    else:
        assert set(mapping) >= {"a", "b"}
        return
    assert "\n" not in message


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=60))
def test_dataset_and_source_names_never_crash(name: str) -> None:
    from semprobe.data import open_dataset
    from semprobe.wordnet import parse_superclass_source

    for parse in (lambda n: parse_superclass_source(n), lambda n: open_dataset(n, "test")):
        with contextlib.suppress(SemprobeError):
            parse(name)
