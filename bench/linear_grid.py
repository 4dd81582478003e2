"""Benchmark: the whole linear-protocol grid from cached features vs one configuration of the
SEM authors' ``main_linear``.

Their ``main_linear`` trains every probe by SGD for 100 epochs (batch 256, lr steps at 60 and
80), and every step runs the frozen backbone and embedder on a batch of augmented images again:
the features are re-extracted 100 times. Ours fits each probe once on cached logits, with any
tau applied afterwards. What is measured and what is projected:

* **ours, measured**: ``linear_grid`` with the full grid (6 train taus x 6 eval taus, 4
  strengths chosen on a validation split and refitted, plus the backbone and logits baselines)
  on CIFAR-100-shaped synthetic SEM logits at a size that fits this machine (5,000 training and
  1,000 test rows, L = 500, V = 13, 100 classes): wall time and the passes over the data that
  every fit made;
* **ours, projected** to CIFAR-100 at L = 5000, V = 13 (50,000 training rows): those passes x
  the time of one pass of the same probe over 5,000 x 65,000 features (measured here), x 10 for
  50,000 rows (a pass is linear in the rows); assumes the same number of passes per fit as at
  the measured size;
* **theirs, measured per step**: one SGD step of one configuration at L = 5000, V = 13, batch
  256: the frozen ResNet-18 (CIFAR stem) and SEM embedder forward, the SEM softmax and the
  65,000 x 100 linear layer's forward, backward and update; data loading and augmentation are
  left out, which favours theirs;
* **theirs, projected**: that step x 196 steps per epoch (50,000 / 256) x 100 epochs.

``ratio`` is their projected time for one configuration over our projected time for the whole
grid; ``ratio_measured_size`` compares the two at the measured size (their step at L = 500,
batch 256, x 100 epochs of 5,000 rows vs our measured grid).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.probe import class_prototypes

FULL = {"n_train": 5_000, "n_test": 1_000, "num_simplices": 500, "vocab": 13, "classes": 100}
SMOKE = {"n_train": 300, "n_test": 100, "num_simplices": 10, "vocab": 13, "classes": 10}
PAPER = {"n_train": 50_000, "num_simplices": 5_000, "vocab": 13, "classes": 100}
EPOCHS, BATCH, STEPS_PER_EPOCH = 100, 256, math.ceil(50_000 / 256)


def feature_set(logits: np.ndarray, labels: np.ndarray, shape: dict[str, int], directory: Path):
    """An in-memory :class:`~semprobe.features.FeatureSet` (backbone: 512 random projections)."""
    from semprobe.features import FeatureSet

    rng = np.random.default_rng(7)
    projection = rng.standard_normal((logits.shape[1], 512)).astype(np.float32) / 30
    manifest = {
        "model": {"num_simplices": shape["num_simplices"], "vocab": shape["vocab"]},
        "dataset": {"class_names": [f"c{i}" for i in range(shape["classes"])]},
        "key": {"transform": "none"},
    }
    features = np.maximum(logits @ projection, 0)
    return FeatureSet(directory, manifest, features, logits, labels)


def cifar_like(shape: dict[str, int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """SEM logits: each class lifts one vertex in 10 simplices, plus N(0, 1) noise."""
    L, V, C = shape["num_simplices"], shape["vocab"], shape["classes"]
    protos = class_prototypes(L, V, C, seed=0)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, C, size=n)
    logits = protos[labels] + rng.standard_normal((n, L * V), dtype=np.float32)
    return logits.astype(np.float32), labels


def ours(shape: dict[str, int], directory: Path) -> dict[str, Any]:
    """The whole default grid on cached logits: wall time, fits, passes, a diagonal cell."""
    from semprobe.protocols import LinearGridSettings, linear_grid

    train = feature_set(*cifar_like(shape, shape["n_train"], 1), shape, directory)
    test = feature_set(*cifar_like(shape, shape["n_test"], 2), shape, directory)
    settings = LinearGridSettings()
    start = time.perf_counter()
    result = linear_grid(train, test, settings, "bench")
    seconds = time.perf_counter() - start
    fits = result.grid.drop_duplicates(["representation", "tau_train", "strength", "fit"])
    sem = result.table[result.table["representation"] == "sem"]
    return {
        "seconds": seconds,
        "fits": len(fits),
        "sem_fits": int((fits["representation"] == "sem").sum()),
        "objective_passes": int(fits["passes"].sum()),
        "sem_objective_passes": int(fits[fits["representation"] == "sem"]["passes"].sum()),
        "cells": len(sem),
        "best_cell_top1": float(sem["top1"].max()),
        "accuracies_in_range": bool(result.grid["top1"].between(0, 1).all()),
    }


def seconds_per_pass(n: int, width: int, classes: int, passes: int = 2) -> float:
    """One objective pass of the probe over ``n`` x ``width`` float32 features (measured)."""
    import warnings

    from semprobe.probe import SparseLogisticProbe

    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, width), dtype=np.float32)
    y = rng.integers(0, classes, size=n)
    probe = SparseLogisticProbe(l1=0.0, l2=1e-4, max_epochs=passes, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        probe.fit(x, y)
        total = time.perf_counter() - start
    # fit also makes one statistics pass (cheaper than an objective pass): counted as one.
    return total / (probe.n_iter_ + 1)


def their_step(num_simplices: int, vocab: int, classes: int, steps: int = 2) -> float:
    """Seconds of one SGD step of one ``main_linear`` configuration at batch 256 (CPU)."""
    import torch

    from semprobe.model import ModelSpec, SEMModel
    from semprobe.sem import sem_softmax

    torch.manual_seed(0)
    model = SEMModel(ModelSpec("resnet18", num_simplices=num_simplices, vocab=vocab)).eval()
    head = torch.nn.Linear(num_simplices * vocab, classes)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    images = torch.randn(BATCH, 3, 32, 32)
    targets = torch.randint(0, classes, (BATCH,))
    times = []
    for _ in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        with torch.no_grad():
            _, logits = model.features_and_logits(images)
            assert logits is not None
            x = sem_softmax(logits, num_simplices, vocab, 0.1)
        loss = torch.nn.functional.cross_entropy(head(x), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return float(min(times[1:]))


def run(smoke: bool = False) -> dict[str, Any]:
    """The benchmark (see the module docstring); ``smoke`` runs tiny shapes."""
    load_before = os.getloadavg()[0]
    shape = SMOKE if smoke else FULL
    with tempfile.TemporaryDirectory() as tmp:
        measured = ours(shape, Path(tmp))
    assert measured["cells"] == 36 and measured["accuracies_in_range"], measured
    if smoke:
        return {
            "name": "linear_grid",
            "baseline": "smoke",
            "ratio": None,
            "smoke": True,
            **measured,
        }
    width = PAPER["num_simplices"] * PAPER["vocab"]
    per_pass_5k = seconds_per_pass(5_000, width, PAPER["classes"])
    per_pass_paper = per_pass_5k * PAPER["n_train"] / 5_000
    # Each fit: its objective passes, one statistics pass, and about one scoring pass.
    passes = measured["objective_passes"] + 2 * measured["fits"]
    ours_projected = passes * per_pass_paper
    step_paper = their_step(PAPER["num_simplices"], PAPER["vocab"], PAPER["classes"])
    theirs_projected = step_paper * STEPS_PER_EPOCH * EPOCHS
    step_small = their_step(shape["num_simplices"], shape["vocab"], shape["classes"])
    theirs_small = step_small * math.ceil(shape["n_train"] / BATCH) * EPOCHS
    return {
        "name": "linear_grid",
        "baseline": "authors' main_linear, one configuration, 100 SGD epochs (projected)",
        "ratio": theirs_projected / ours_projected,
        "ratio_measured_size": theirs_small / measured["seconds"],
        "ours_measured": measured,
        "ours_projected_s": ours_projected,
        "ours_projected_passes": passes,
        "seconds_per_pass_5000x65000": per_pass_5k,
        "seconds_per_pass_paper_projected": per_pass_paper,
        "theirs_step_s_L5000": step_paper,
        "theirs_projected_s": theirs_projected,
        "theirs_step_s_measured_size": step_small,
        "theirs_measured_size_s": theirs_small,
        "shape": shape,
        "smoke": False,
        "load_average_before_after": [load_before, os.getloadavg()[0]],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2, default=str))
