"""The sparse probe at ImageNet-1k scale, projected from a measured 100,000-row run.

ImageNet-1k's training set is 1,281,167 images; with the SEM authors' ImageNet head (L = 4500,
V = 21) the probe reads 1.28 M x 94,500 float16 SEM features (242 GB) for 1,000 classes. This
benchmark writes a 100,000-row memory map of that width (18.9 GB), fits the probe on it for one
objective pass in a fresh process (``bench.probe.run_paper_scale``) and projects to 1.28 M rows:
the time of a pass and the disk grow with the rows, the memory does not (the probe streams rows;
its own state is ``(2 * history + 6) * classes * width * 4`` bytes, which the run checks).
The baseline is one plain read-and-convert pass over the same file (the floor of any pass).

``--smoke`` runs 2,000 x 1,050 x 20 classes in seconds and checks the same invariants.
"""

from __future__ import annotations

from typing import Any

from bench.probe import run_paper_scale

IMAGENET_TRAIN = 1_281_167
FULL = {"n": 100_000, "num_simplices": 4500, "vocab": 21, "classes": 1000}
SMOKE = {"n": 2_000, "num_simplices": 50, "vocab": 21, "classes": 20}
HISTORY, BATCH = 10, 1024  # SparseLogisticProbe's defaults


def run(smoke: bool = False) -> dict[str, Any]:
    """Measure at ``n`` rows, project to ImageNet-1k's 1,281,167."""
    shape = SMOKE if smoke else FULL
    width = shape["num_simplices"] * shape["vocab"]
    measured = run_paper_scale(
        n=shape["n"], d=width, classes=shape["classes"], epochs=1, vocab=shape["vocab"]
    )
    scale = IMAGENET_TRAIN / shape["n"]
    state_mb = (2 * HISTORY + 6) * shape["classes"] * width * 4 / 2**20
    # Invariants (what --smoke checks): the file is exactly the rows; the probe's memory is its
    # state plus a bounded block of rows, not the file.
    expected_gb = shape["n"] * width * 2 / 1e9
    assert abs(measured["file_gb"] - expected_gb) < 1e-3 + 1e-6 * expected_gb, measured
    block_mb = BATCH * width * 4 / 2**20
    assert measured["peak_rss_mb"] < state_mb + 4 * block_mb + 1536, measured
    return {
        "name": "probe_scale",
        "baseline": "one read-and-convert pass over the same memory map",
        "ratio": measured["s_per_epoch"] / measured["read_pass_s"],
        "target": "RSS independent of the rows; time per pass and disk linear in them",
        "measured": measured,
        "probe_state_mb": state_mb,
        "rss_bound_mb": state_mb + 4 * block_mb + 1536,
        "projected_1_28M": {
            "rows": IMAGENET_TRAIN,
            "s_per_epoch": measured["s_per_epoch"] * scale,
            "read_pass_s": measured["read_pass_s"] * scale,
            "disk_gb": measured["file_gb"] * scale,
            "peak_rss_mb": measured["peak_rss_mb"],
        },
    }
