"""Benchmark: the streamed exact kNN against the in-memory search every SSL codebase does.

* ``ratio``: at a size where both fit (20,000 training x 2,000 test rows of 2,048 features, the
  width of a ResNet-50, 100 classes), lightly's ``knn_predict`` over the whole feature bank in
  memory (a 2,000 x 20,000 similarity matrix) against ours, streamed in blocks with a running
  top-k; seconds of the baseline over ours, and the two accuracies, which must be equal.
* **paper scale**: 50,000 training rows of SEM logits at L = 5000, V = 13 (65,000 features,
  float16, 6.5 GB on disk, memory-mapped), the representation ``softmax(z / 0.1)`` computed
  block by block; a child process searches the neighbours of 1,000 test rows with solo-learn's
  k = 20: seconds per test row (projected to CIFAR-100's 10,000 test rows) and the child's
  peak RSS. The in-memory baseline would hold the training features as float32 (13 GB) before
  its first product; that is stated, not run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.probe import class_prototypes

REPO = Path(__file__).resolve().parents[1]
FULL = {"n_train": 20_000, "n_test": 2_000, "width": 2_048, "classes": 100}
SMOKE = {"n_train": 1_000, "n_test": 200, "width": 64, "classes": 10}
PAPER = {"n_train": 50_000, "n_test": 1_000, "num_simplices": 5_000, "vocab": 13, "classes": 100}
PAPER_SMOKE = {"n_train": 2_000, "n_test": 100, "num_simplices": 50, "vocab": 13, "classes": 10}


def clustered(shape: dict[str, int], seed: int = 0) -> tuple[np.ndarray, ...]:
    """Training and test rows around one centre per class."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((shape["classes"], shape["width"]), dtype=np.float32)
    y_train = rng.integers(0, shape["classes"], shape["n_train"])
    y_test = rng.integers(0, shape["classes"], shape["n_test"])
    noise = 2.0 * np.sqrt(shape["width"] / 64)
    x_train = centres[y_train] + noise * rng.standard_normal(
        (shape["n_train"], shape["width"]), dtype=np.float32
    )
    x_test = centres[y_test] + noise * rng.standard_normal(
        (shape["n_test"], shape["width"]), dtype=np.float32
    )
    return x_train, y_train, x_test, y_test


def in_memory(x_train, y_train, x_test, y_test, classes: int, k: int, t: float) -> float:
    """lightly's ``knn_predict`` over the whole bank: top-1 accuracy."""
    import torch
    from lightly.utils.benchmarking.knn import knn_predict

    bank = torch.nn.functional.normalize(torch.from_numpy(x_train), dim=1).T.contiguous()
    query = torch.nn.functional.normalize(torch.from_numpy(x_test), dim=1)
    predicted = knn_predict(query, bank, torch.from_numpy(y_train), classes, knn_k=k, knn_t=t)
    return float((predicted[:, 0].numpy() == y_test).mean())


def compare(shape: dict[str, int]) -> dict[str, Any]:
    """Both searches on the same data (lightly's convention, k = 200, T = 0.1)."""
    import lightly.utils.benchmarking.knn  # noqa: F401 - imported before the clock starts

    from semprobe.protocols.knn import knn_accuracy, nearest_neighbours

    x_train, y_train, x_test, y_test = clustered(shape)
    k, t = min(200, shape["n_train"]), 0.1
    start = time.perf_counter()
    theirs = in_memory(x_train, y_train, x_test, y_test, shape["classes"], k, t)
    theirs_s = time.perf_counter() - start
    start = time.perf_counter()
    found = nearest_neighbours(x_train, x_test, k)
    ours = knn_accuracy(found, y_train, y_test, shape["classes"], k, t)["top1"]
    ours_s = time.perf_counter() - start
    # The same answer: both are exact (up to the order of exactly tied neighbours).
    assert abs(ours - theirs) <= 1 / shape["n_test"], (ours, theirs)
    return {"theirs_s": theirs_s, "ours_s": ours_s, "theirs_top1": theirs, "ours_top1": ours}


def write_logits(path: Path, shape: dict[str, int], n: int, seed: int) -> np.ndarray:
    """An ``(n, L*V)`` float16 ``.npy`` of SEM logits, written by plain appends; the labels."""
    L, V, C = shape["num_simplices"], shape["vocab"], shape["classes"]
    protos = class_prototypes(L, V, C, seed=0)
    rng = np.random.default_rng(seed)
    pool = min(1024, n)
    pool_y = rng.integers(0, C, pool)
    rows = (protos[pool_y] + rng.standard_normal((pool, L * V), dtype=np.float32)).astype(
        np.float16
    )
    labels = np.empty(n, dtype=np.int64)
    header = {"descr": "<f2", "fortran_order": False, "shape": (n, L * V)}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_2_0(fh, header)
        for start in range(0, n, pool):
            pick = rng.permutation(pool)[: min(pool, n - start)]
            rows[pick].tofile(fh)
            labels[start : start + len(pick)] = pool_y[pick]
        fh.flush()
        os.fsync(fh.fileno())
    return labels


CHILD = """
import json, sys, time
import numpy as np
from pathlib import Path
from semprobe.features import FeatureSet
from semprobe.protocols.knn import knn_accuracy, nearest_neighbours
from semprobe.protocols.rows import FeatureRows
from bench.probe import _own_peak_rss_mb
folder, L, V, C = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def fs(split):
    logits = np.load(folder / f"{split}.npy", mmap_mode="r")
    manifest = {"model": {"num_simplices": L, "vocab": V},
                "dataset": {"class_names": [str(i) for i in range(C)]}}
    return FeatureSet(folder, manifest, logits[:, :1], logits, np.load(folder / f"{split}_y.npy"))
train, test = fs("train"), fs("test")
start = time.perf_counter()
found = nearest_neighbours(FeatureRows(train, "sem", 0.1), FeatureRows(test, "sem", 0.1), 20)
seconds = time.perf_counter() - start
scored = knn_accuracy(found, train.labels, test.labels, C, 20, 0.07)
print(json.dumps({"seconds": seconds, "top1": scored["top1"], "peak_rss_mb": _own_peak_rss_mb()}))
"""


def paper_scale(shape: dict[str, int]) -> dict[str, Any]:
    """The streamed search over a 65,000-wide memory map, in a child process (its peak RSS)."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("SEMPROBE_BENCH_TMP")) as tmp:
        folder = Path(tmp)
        np.save(
            folder / "train_y.npy", write_logits(folder / "train.npy", shape, shape["n_train"], 1)
        )
        np.save(folder / "test_y.npy", write_logits(folder / "test.npy", shape, shape["n_test"], 2))
        size_gb = (folder / "train.npy").stat().st_size / 1e9
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        argv = [sys.executable, "-c", CHILD, str(folder)]
        argv += [str(shape[k]) for k in ("num_simplices", "vocab", "classes")]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        result = json.loads(done.stdout.strip().splitlines()[-1])
    width = shape["num_simplices"] * shape["vocab"]
    return {
        **result,
        "train_file_gb": size_gb,
        "seconds_per_test_row": result["seconds"] / shape["n_test"],
        "projected_10000_test_rows_s": result["seconds"] / shape["n_test"] * 10_000,
        "in_memory_train_float32_gb": shape["n_train"] * width * 4 / 1e9,
        "shape": shape,
    }


def run(smoke: bool = False) -> dict[str, Any]:
    """The benchmark (see the module docstring); ``smoke`` runs tiny shapes."""
    load_before = os.getloadavg()[0]
    shape = SMOKE if smoke else FULL
    measured = compare(shape)
    big = paper_scale(PAPER_SMOKE if smoke else PAPER)
    return {
        "name": "knn",
        "baseline": "lightly knn_predict over the whole bank in memory",
        "ratio": measured["theirs_s"] / measured["ours_s"],
        **measured,
        "paper_scale": big,
        "peak_rss_mb": big["peak_rss_mb"],
        "shape": shape,
        "smoke": smoke,
        "load_average_before_after": [load_before, os.getloadavg()[0]],
    }


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2, default=str))
