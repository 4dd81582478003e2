"""The paper-scale benchmarks' smoke forms: they run, and their invariants hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def smoke(name: str, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", name, "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / f"{name}-smoke.json").read_text())


def test_probe_projection_to_imagenet_rows(tmp_path: Path) -> None:
    result = smoke("probe_scale", tmp_path)
    measured, projected = result["measured"], result["projected_1_28M"]
    rows, width = measured["shape"]
    assert measured["file_gb"] == pytest.approx(rows * width * 2 / 1e9, rel=1e-3)
    scale = 1_281_167 / rows
    assert projected["disk_gb"] == pytest.approx(measured["file_gb"] * scale)
    assert projected["s_per_epoch"] == pytest.approx(measured["s_per_epoch"] * scale)
    # Memory is the probe's state plus a block, not the file: it is carried over unscaled.
    assert measured["peak_rss_mb"] < result["rss_bound_mb"]
    assert projected["peak_rss_mb"] == measured["peak_rss_mb"]
    assert measured["objective_passes"] == 1 and measured["classes"] == 20
