"""The GPU run's preparation and its smoke form: the packed data and every stage, on the CPU."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bench.gpu_pack import pack, unpack

REPO = Path(__file__).resolve().parents[1]


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


def test_unpacked_images_are_the_packed_files(real_cifar: Path, tmp_path: Path) -> None:
    packed = tmp_path / "data.npz"
    info = pack(real_cifar, packed, train_per_class=2, test_per_class=1, wordnet=False)
    assert info["images"] == {"train": 200, "test": 100} and info["classes"] == 100
    folder = unpack(packed, tmp_path / "out")
    digests = _digests(folder)
    assert len(digests) == 300
    for name, digest in digests.items():  # byte for byte the source's first files per class
        assert hashlib.sha256((real_cifar / name).read_bytes()).hexdigest() == digest
    first = sorted((real_cifar / "train" / "apple").glob("*.png"))[:2]
    assert sorted((folder / "train" / "apple").iterdir()) == [
        folder / "train" / "apple" / p.name for p in first
    ]
    assert (folder / "superclasses.csv").read_text() == (
        real_cifar / "superclasses.csv"
    ).read_text()


@pytest.mark.slow
def test_smoke_run_gives_every_stage_and_the_study(real_cifar: Path, tmp_path: Path) -> None:
    """``python -m bench.gpu_run --smoke``: what CI can run of the GPU script."""
    packed = tmp_path / "data.npz"
    pack(real_cifar, packed, train_per_class=4, test_per_class=2, wordnet=False)
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu_run",
            "--data",
            str(packed),
            "--out",
            str(out),
            "--smoke",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    status = {s["name"]: s["status"] for s in summary["stages"]}
    assert status == dict.fromkeys(
        ["pretrain_check", "probe_scale", "entropy", "extraction", "study"], "ok"
    ), (status, (out / "logs.txt").read_text()[-3000:])
    assert summary["images"] == {"train": 400, "test": 200}
    results = {s["name"]: s.get("result") for s in summary["stages"]}
    check = results["pretrain_check"]
    assert [v["name"] for v in check["variants"]] == ["BYOL+SEM", "BYOL"]
    assert all(v["falling"] for v in check["variants"])
    ratio = check["sem_step_time_ratio"]["BYOL+SEM"]
    assert ratio == pytest.approx(check["variants"][0]["step_ms"] / check["variants"][1]["step_ms"])
    assert results["probe_scale"]["shape"] == [2000, 1300]
    assert max(results["entropy"]["invariants"]["max_abs_error_vs_float64"].values()) < 1e-5
    assert results["extraction"]["images"] == 64
    with tarfile.open(out / "study-run.tar.gz") as tar:
        names = set(tar.getnames())
    assert "cifar100-real-gpu/comparison.csv" in names
    assert "cifar100-real-gpu/byol-sem/tau_sweep.csv" in names
    assert not [n for n in names if n.endswith((".npy", ".npz", ".ckpt"))]


def test_missing_data_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_run", "--data", str(tmp_path / "x.npz"), "--out", "o"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"gpu_run: error: {tmp_path / 'x.npz'} does not exist (python -m bench.gpu_pack)"
    ]
