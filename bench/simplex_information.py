"""Benchmark: the mutual information of every simplex with the labels, at the paper's size.

* ``ratio``: at L = 5000, V = 13, 10,000 test images, 100 classes in 20 superclasses and 10
  label permutations (the dashboard's table), scikit-learn's ``mutual_info_score`` called once
  per (simplex, label set), timed on 100 simplices and projected to all 5000, against
  :func:`semprobe.simplex_information.information_table` on all 5000 (seconds of the baseline
  over ours). The values of the timed simplices must agree to 1e-9 nats.
* ``ours_s``: the whole table; ``agreement_s``: the simplices most alike one simplex (one
  dashboard selection); ``assignments_s``: the argmax vertices from in-memory float32 logits.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

FULL = {"n": 10_000, "num_simplices": 5_000, "vocab": 13, "classes": 100, "permutations": 10}
SMOKE = {"n": 2_000, "num_simplices": 200, "vocab": 13, "classes": 100, "permutations": 3}
TIMED = 100  # simplices the baseline is timed on


def run(smoke: bool = False) -> dict[str, Any]:
    """The benchmark (see the module docstring); ``smoke`` runs small shapes."""
    from sklearn.metrics import mutual_info_score

    from semprobe.simplex_information import (
        information_table,
        simplex_agreement,
        vertex_assignments,
    )

    load_before = os.getloadavg()[0]
    shape = SMOKE if smoke else FULL
    rng = np.random.default_rng(0)
    n, width, vocab = shape["n"], shape["num_simplices"], shape["vocab"]
    labels = rng.integers(0, shape["classes"], n)
    supers = [c % 20 for c in range(shape["classes"])]
    logits = rng.standard_normal((n, width * vocab), dtype=np.float32)
    logits[np.arange(n), labels % vocab] += 2.0  # simplex 0 follows the class
    start = time.perf_counter()
    assignments = vertex_assignments(logits, width, vocab)
    assignments_s = time.perf_counter() - start
    del logits
    start = time.perf_counter()
    table = information_table(assignments, vocab, labels, supers, shape["permutations"], seed=0)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    simplex_agreement(assignments, vocab, 0)
    agreement_s = time.perf_counter() - start

    timed = min(TIMED, width)
    perm = np.random.default_rng(0)
    label_sets = [labels] + [labels[perm.permutation(n)] for _ in range(shape["permutations"])]
    super_of = np.asarray(supers)
    start = time.perf_counter()
    theirs = np.array(
        [[mutual_info_score(y, assignments[:, s]) for s in range(timed)] for y in label_sets]
    )
    for y in label_sets:
        for s in range(timed):
            mutual_info_score(super_of[y], assignments[:, s])
    theirs_s = (time.perf_counter() - start) * width / timed
    error = float(np.abs(theirs[0] - table["mi_class"].to_numpy()[:timed]).max())
    baseline_error = float(
        np.abs(theirs[1:].mean(axis=0) - table["mi_class_baseline"].to_numpy()[:timed]).max()
    )
    assert error < 1e-9 and baseline_error < 1e-9, (error, baseline_error)
    assert table["mi_class_excess"].idxmax() == 0  # the planted simplex
    return {
        "name": "simplex_information",
        "baseline": f"sklearn mutual_info_score per simplex and label set ({timed} timed)",
        "ratio": theirs_s / ours_s,
        "ours_s": ours_s,
        "theirs_s_projected": theirs_s,
        "agreement_s": agreement_s,
        "assignments_s": assignments_s,
        "max_abs_difference_nats": max(error, baseline_error),
        "shape": shape,
        "smoke": smoke,
        "load_average_before_after": [load_before, os.getloadavg()[0]],
    }


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2, default=str))
