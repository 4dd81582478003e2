"""Cross-cutting reliability: SIGKILL at random points and mid-swap, full and read-only disks,
fuzzed parsers.

Each test names the guarantee of docs/reliability.md that it checks. A kill test counts only the
kills that landed: the process died by the signal, mid-work (checked from what it left behind),
and draws another moment otherwise, so that it cannot pass without testing anything.
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
from tests.pretrain_runs import METHOD_TINY, TINY
from tests.swap_kills import SWAP_KILL_PRELUDE

DATASET = "synthetic:train=3,test=2"
TINY_PRETRAIN: dict[str, Any] = {
    **TINY,
    **METHOD_TINY["byol"],
    "dataset": "synthetic:train=2,test=1",
    "method": "byol",
    "epochs": 3,
    "seed": 5,
    # CPU float reductions depend on the thread count: exact resumes need the same one.
    "threads": 1,
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
LANDED_KILLS = 3
MAX_DRAWS = 20


def _kill_after(argv: list[str], delay: float) -> int:
    """Start ``argv``, SIGKILL it after ``delay`` seconds (unless it ended); its exit code."""
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    return proc.wait()


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - start


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
    """Guarantee: a killed run never leaves a run directory that opens as valid; a rerun is
    byte-identical to an uninterrupted run."""
    from semprobe.rundir import Run

    ckpt = save_tiny(tmp_path / "m.pt", seed=7)
    cache = str(tmp_path / "cache")
    reference = tmp_path / "reference"
    command = [sys.executable, *RELEVANCE, str(ckpt), "--cache-dir", cache]
    _timed([*command, "--out", str(tmp_path / "first")])  # fills the feature cache
    # The killed runs find the features cached: time one that does too.
    duration = _timed([*command, "--out", str(reference)])
    rng = random.Random(0)
    landed = 0
    # Kill times are drawn between bounds that move towards the building phase: a kill that
    # came too early raises the lower one, a run that finished lowers the upper one (the
    # machine's load changes the timings from run to run).
    low, high = 0.1 * duration, 1.2 * duration
    for draw in range(MAX_DRAWS):
        if landed == LANDED_KILLS:
            break
        out = tmp_path / f"killed{draw}"
        delay = rng.uniform(low, high)
        code = _kill_after([*command, "--out", str(out)], delay)
        building = list(tmp_path.glob(f".{out.name}.building-*"))
        if code != -signal.SIGKILL or out.exists() or not building:
            # Finished, or killed before the run was being built or after it was in place:
            # nothing was tested; draw another moment.
            assert code in (0, -signal.SIGKILL)
            if out.exists():
                Run(out)  # whatever is under the final name is complete
                high = max(delay, low + 0.05 * duration)
            else:
                low = min(delay, high - 0.05 * duration)
            continue
        landed += 1
        with pytest.raises(SemprobeError, match="does not exist"):
            Run(out)  # the half-built run is only under its hidden name
        subprocess.run([*command, "--out", str(out)], env=ENV, check=True, capture_output=True)
        for name in ("summary.json", "probe.npz", "curve.csv"):
            assert (out / "m" / "relevance" / name).read_bytes() == (
                reference / "m" / "relevance" / name
            ).read_bytes()
        assert not any(p.exists() for p in building), "the rerun removes the dead leftover"
    assert landed == LANDED_KILLS, f"only {landed} of {MAX_DRAWS} kills landed mid-run"


# A child process that replaces a run directory with rundir.building_run and SIGKILLs itself at
# one chosen step of the swap (as tests/test_features.py does for a feature cache): while
# building, after building, right after the exchange, or (without an exchange) between the two
# renames.
_RUN_SWAP_CHILD = (
    SWAP_KILL_PRELUDE
    + r"""
from semprobe.rundir import building_run, write_run_metadata

with building_run(final) as work:
    (work / "classes.json").write_text('{"class_names": ["a", "b"], "superclass_of": null}')
    write_run_metadata(work, "relevance", [], {"version": "new"})
    if step == "building":
        die()
"""
)


def _enter_and_fail(final: Path) -> None:
    from semprobe.rundir import building_run

    with building_run(final):
        raise RuntimeError("stop before building")


def _fail_inside_a_new_run(final: Path) -> None:
    """Enter building_run (which puts back an old run a killed swap left aside) and fail."""
    with pytest.raises(RuntimeError, match="stop"):
        _enter_and_fail(final)


def _write_run(final: Path, version: str) -> None:
    from semprobe.rundir import building_run, write_run_metadata

    with building_run(final) as work:
        (work / "classes.json").write_text('{"class_names": ["a", "b"], "superclass_of": null}')
        write_run_metadata(work, "relevance", [], {"version": version})


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
def test_a_run_killed_mid_swap_leaves_the_old_or_the_new_run(
    tmp_path: Path, step: str, exchange: bool
) -> None:
    """Guarantee: building_run leaves either the old run or the new one under the final name
    (the next writer puts the old one back where a swap without an exchange was cut)."""
    from semprobe.rundir import Run

    final = tmp_path / "run"
    _write_run(final, "old")
    child = subprocess.run(
        [sys.executable, "-c", _RUN_SWAP_CHILD, str(final), step, "1" if exchange else "0"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr  # the kill landed, mid-swap
    if step == "after-exchange":
        assert Run(final).meta["parameters"] == {"version": "new"}
        return
    if step == "between-renames":
        # Without an exchange the final name is empty for a moment; the next writer restores it,
        # even one that fails before finishing its own run.
        assert not final.exists()
        _fail_inside_a_new_run(final)
    assert Run(final).meta["parameters"] == {"version": "old"}
    _write_run(final, "newer")  # the next run replaces it and clears the dead leftovers
    assert Run(final).meta["parameters"] == {"version": "newer"}
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != final.name)
    assert all(name.startswith(".") for name in leftovers), leftovers


KILLED_PRETRAIN = """
import json, sys
from semprobe.pretrain import PretrainConfig, run
run(PretrainConfig(**json.loads(sys.argv[1])))
"""


def test_pretraining_killed_at_random_points_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """Guarantee: every checkpoint on disk is complete; resuming ends as an uninterrupted run."""
    from semprobe.pretrain import PretrainConfig, run

    whole_config = {**TINY_PRETRAIN, "out": str(tmp_path / "whole")}
    duration = _timed([sys.executable, "-c", KILLED_PRETRAIN, json.dumps(whole_config)])
    expected = torch.load(tmp_path / "whole" / "final.ckpt", weights_only=True)["state_dict"]
    rng = random.Random(1)
    landed = 0
    low, high = 0.2 * duration, 1.1 * duration  # moved as in the relevance test above
    for draw in range(MAX_DRAWS):
        if landed == 2:
            break
        out = tmp_path / f"killed{draw}"
        config = {**TINY_PRETRAIN, "out": str(out)}
        delay = rng.uniform(low, high)
        code = _kill_after([sys.executable, "-c", KILLED_PRETRAIN, json.dumps(config)], delay)
        if code != -signal.SIGKILL or (out / "final.ckpt").exists():
            high = max(delay, low + 0.05 * duration)  # finished: draw an earlier moment
            continue
        if not out.exists():
            low = min(delay, high - 0.05 * duration)  # killed before training began
            continue
        landed += 1
        checkpoints = sorted((out / "checkpoints").glob("*.ckpt"))
        for path in checkpoints:  # whatever is there under a final name loads completely
            load_model(path)
        resume = str(checkpoints[-1]) if checkpoints else None
        if resume is None:  # killed before the first checkpoint: start again from scratch
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        final = run(PretrainConfig(**config, resume=resume))
        got = torch.load(final, weights_only=True)["state_dict"]
        for key, value in expected.items():
            assert torch.equal(value, got[key]), key
    assert landed == 2, f"only {landed} of {MAX_DRAWS} kills landed mid-training"


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


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask-022", "umask-027"])
def test_a_run_and_its_cache_are_readable_as_the_umask_allows(tmp_path: Path, umask: int) -> None:
    """Files are written under temporary names (private, 0o600) and renamed: after the rename
    they must have the mode any new file gets, or colleagues could not read a shared run."""
    checkpoint = save_tiny(tmp_path / "m.pt")
    script = (
        "import os, sys, warnings\n"
        f"os.umask({umask})\n"
        "warnings.simplefilter('ignore')\n"
        "from semprobe.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["relevance", str(checkpoint), "--dataset", "synthetic:train=2,test=1", "--quiet"]
    argv += ["--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache")]
    argv += ["--k", "2", "--k-max", "3", "--epochs", "3", "--permutations", "5"]
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    files += [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and ".lock" not in p.name]
    assert len(files) > 10
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes
