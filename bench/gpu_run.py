"""Every GPU measurement of semprobe in one command: five independent stages, one output folder.

``python -m bench.gpu_run --data .gpu/cifar100-real.npz --out OUT`` (``scripts/gpu_run.sh`` sets
up the packages first) runs, each in its own process with its own time limit, one after another:

1. ``pretrain_check``: BYOL+SEM and BYOL at batch 256, bf16, on the real images
   (:mod:`semprobe.pretrain.gpu_check`): images/s, peak memory, SEM's step time over BYOL's
   (target <= 1.15) and a falling loss;
2. ``probe_scale``: the sparse probe at the paper's size, 50,000 x 65,000 float16 x 100 classes,
   seconds per pass (:func:`bench.probe.run_paper_scale`);
3. ``entropy``: the streamed entropy analysis at 6 taus over logits of the same size
   (:mod:`bench.entropy`);
4. ``extraction``: images/s of our cached extraction against the bare torchvision loop
   (ResNet-18 + SEM head, L = 5000) on the real test images (:mod:`bench.extraction`);
5. ``study``: ``studies/cifar100_real_gpu.toml`` on the packed images: ResNet-18 (CIFAR stem),
   L = 5000, V = 13, BYOL+SEM and BYOL for the same number of epochs, as many as the time left
   allows at the images/s stage 1 measured, then relevance (coarse and WordNet superclasses,
   random-init twins), entropy and the tau sweep.

A stage that fails or runs out of time is recorded as such and the next one runs. ``OUT`` gets
three files: ``summary.json`` (each stage's status, seconds and results), ``logs.txt`` (every
stage's output) and ``study-run.tar.gz`` (the study's tables, figures and summaries, without its
arrays). ``--smoke`` runs the same stages at toy sizes on the CPU in about two minutes; the tests
run it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.gpu_pack import unpack

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "studies" / "cifar100_real_gpu.toml"
#: Seconds the study keeps for its analyses after the two pretrainings.
ANALYSIS_RESERVE_S = 150
#: Files of the study's run directory that are left out of the archive (large arrays).
ARRAY_SUFFIXES = (".npy", ".npz", ".pt", ".ckpt")


@dataclass
class Stage:
    """One measurement: a command built when it starts (it may read earlier results)."""

    name: str
    limit_s: float
    command: Callable[[dict[str, Any]], list[str]]
    #: The JSON result: the last line of the output that parses, or a file the stage writes.
    result_file: str | None = None


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def stages(data: Path, work: Path, smoke: bool, deadline: float, train_images: int) -> list[Stage]:
    """The five stages; their commands at toy sizes on the CPU when ``smoke``."""
    images = f"imagefolder:{data}"
    check = ["-m", "semprobe.pretrain.gpu_check", "--methods", "byol", "--compare-baseline"]
    check += ["--image-folder", str(data), "--json", str(work / "pretrain_check.json")]
    check += ["--cpu-smoke"] if smoke else ["--steps", "150", "--warmup-steps", "20"]
    probe = ["-m", "bench.probe", "--paper-scale-only", "--epochs", "2"]
    probe += ["--rows", "2000", "--width", "1300"] if smoke else ["--device", "cuda"]
    entropy = ["-m", "bench.entropy"] + (["--smoke"] if smoke else ["--device", "cuda"])
    extraction = ["-m", "bench.extraction", "--throughput", images]
    extraction += (
        ["--backbone", "small_cnn", "--num-simplices", "20", "--limit", "64", "--batch-size", "32"]
        if smoke
        else ["--device", "cuda", "--workers", "12"]
    )

    def study(results: dict[str, Any]) -> list[str]:
        study_file = write_study(
            data, work, smoke, epochs_for(results, train_images, deadline, smoke)
        )
        return _python("-m", "semprobe", "study", str(study_file))

    return [
        Stage(
            "pretrain_check", 60 if smoke else 90, lambda _: _python(*check), "pretrain_check.json"
        ),
        Stage("probe_scale", 60 if smoke else 75, lambda _: _python(*probe)),
        Stage("entropy", 60 if smoke else 75, lambda _: _python(*entropy)),
        Stage("extraction", 60, lambda _: _python(*extraction)),
        Stage("study", math.inf, study),  # its limit is the time left (see run)
    ]


def epochs_for(results: dict[str, Any], train_images: int, deadline: float, smoke: bool) -> int:
    """Epochs per model such that both pretrainings end ``ANALYSIS_RESERVE_S`` before the deadline.

    From the SEM model's images/s in ``pretrain_check`` (the slower of the two, so both get the
    same number of epochs); 10 when that stage gave no figure. At least 1, at most 200.
    """
    if smoke:
        return 1
    per_model_s = max(0.0, deadline - time.monotonic() - ANALYSIS_RESERVE_S) / 2
    check = results.get("pretrain_check") or {}
    rates = [v["images_per_s"] for v in check.get("variants", []) if "+SEM" in v["name"]]
    if not rates:
        return 10
    # 0.8: an epoch also starts its loader workers and ends with a checkpoint.
    return max(1, min(200, int(0.8 * per_model_s * rates[0] / train_images)))


def write_study(data: Path, work: Path, smoke: bool, epochs: int) -> Path:
    """``studies/cifar100_real_gpu.toml`` pointed at ``data`` and ``work``, ``epochs`` per model."""
    text = STUDY.read_text()
    wordnet = data / "wordnet.csv"
    sources = f'["coarse", "file:{wordnet}"]' if wordnet.is_file() else '["coarse"]'
    replacements = {
        'dataset = "imagefolder:../../shared/data/cifar100-real"': (
            f'dataset = "imagefolder:{data}"'
        ),
        'superclasses = ["coarse", "wordnet"]': f"superclasses = {sources}",
        '"../runs/': f'"{work}/',
        "epochs = 20\n": f"epochs = {epochs}\n",
    }
    if smoke:  # toy sizes on the CPU, every key the same
        replacements |= {
            'backbone = "resnet18"': 'backbone = "small_cnn"',
            "num_simplices = 5000": "num_simplices = 20",
            'precision = "bf16-mixed"': 'precision = "32"',
            'accelerator = "gpu"': 'accelerator = "cpu"',
            "workers = 12": "workers = 0",
            'device = "cuda"': 'device = "cpu"',
            "permutations = 1000": "permutations = 20",
            "k_max = 50": "k_max = 5",
            "[probe]\nepochs = 60": "[probe]\nepochs = 5",
        }
    for old, new in replacements.items():
        if old not in text:
            raise ValueError(f"{STUDY.name} no longer has {old!r}: update bench/gpu_run.py")
        text = text.replace(old, new)
    path = work / "study.toml"
    path.write_text(text)
    return path


def run_stage(stage: Stage, results: dict[str, Any], work: Path, log: Any, limit_s: float) -> dict:
    """Run one stage in its own process; never raises."""
    start = time.monotonic()
    record: dict[str, Any] = {"name": stage.name, "limit_s": round(limit_s, 1)}
    log.write(f"\n===== {stage.name} (limit {limit_s:.0f} s)\n")
    log.flush()
    try:
        command = stage.command(results)
        record["command"] = " ".join(command[1:])
        # The stages run outside the repository; bench/ is found through PYTHONPATH, after any
        # installed semprobe (the repository's semprobe/ folder lacks semprobe.pretrain).
        path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
        done = subprocess.run(
            command,
            cwd=work,
            env=os.environ | {"PYTHONPATH": path},
            capture_output=True,
            text=True,
            timeout=limit_s,
            check=False,
        )
        log.write(done.stdout + done.stderr)
        record["rc"] = done.returncode
        record["status"] = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        result = _result(done.stdout, work / stage.result_file if stage.result_file else None)
        if result is not None:
            record["result"] = result
    except subprocess.TimeoutExpired as exc:
        log.write(_text(exc.stdout) + _text(exc.stderr))
        record["status"] = f"timed out after {limit_s:.0f} s"
    except Exception as exc:  # a stage's failure must not stop the next one
        log.write(f"{type(exc).__name__}: {exc}\n")
        record["status"] = f"failed ({type(exc).__name__}: {exc})"
    record["seconds"] = round(time.monotonic() - start, 1)
    log.write(f"----- {stage.name}: {record['status']} in {record['seconds']} s\n")
    log.flush()
    return record


def _result(stdout: str, file: Path | None) -> Any:
    if file is not None and file.is_file():
        return json.loads(file.read_text())
    text = stdout.strip()
    try:  # a whole-output JSON document (the benchmarks print one, indented)
        return json.loads(text[text.index("{") :]) if "{" in text else None
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def archive_study(work: Path, out: Path) -> list[str]:
    """The study's run directory, without its arrays, as ``out/study-run.tar.gz``."""
    run_dir = work / "cifar100-real-gpu"
    if not (run_dir / "run.json").is_file():
        return []
    kept = [p for p in sorted(run_dir.rglob("*")) if p.is_file() and p.suffix not in ARRAY_SUFFIXES]
    tmp = out / ".study-run.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for p in kept:
            tar.add(p, arcname=str(p.relative_to(work)))
    tmp.replace(out / "study-run.tar.gz")
    return [str(p.relative_to(run_dir)) for p in kept]


def run(data: Path, out: Path, smoke: bool = False, budget_s: float = 480.0) -> dict[str, Any]:
    """Run every stage within ``budget_s`` seconds; write and return the summary."""
    start = time.monotonic()
    deadline = start + budget_s
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"smoke": smoke, "budget_s": budget_s, "stages": []}
    summary["device"] = _device_name()
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="semprobe-gpu-run-") as tmp,
        open(out / "logs.txt", "w") as log,
    ):
        work = Path(tmp)
        folder = unpack(data, work / "cifar100-real")
        summary["images"] = {
            split: sum(1 for _ in (folder / split).glob("*/*.png")) for split in ("train", "test")
        }
        for stage in stages(folder, work, smoke, deadline, summary["images"]["train"]):
            left = deadline - time.monotonic()
            limit = min(stage.limit_s, left)
            if limit < 10:
                summary["stages"].append({"name": stage.name, "status": "skipped: no time left"})
                continue
            record = run_stage(stage, results, work, log, limit)
            results[stage.name] = record.get("result")
            summary["stages"].append(record)
        summary["study_files"] = archive_study(work, out)
    summary["seconds"] = round(time.monotonic() - start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the .npz of bench.gpu_pack")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on the CPU")
    parser.add_argument("--budget-s", type=float, default=480.0, help="seconds in all (480)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(
            f"gpu_run: error: {args.data} does not exist (python -m bench.gpu_pack)",
            file=sys.stderr,
        )
        return 2
    if args.budget_s <= 0:
        print("gpu_run: error: --budget-s must be positive", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    summary = run(args.data, args.out, args.smoke, args.budget_s)
    for stage in summary["stages"]:
        print(f"{stage['name']}: {stage['status']} ({stage.get('seconds', 0)} s)")
    print(f"{summary['seconds']} s in all on {summary['device']}; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
