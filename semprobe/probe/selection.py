"""Choosing ``l1`` by held-out accuracy: the split of the training rows and the choice."""

from __future__ import annotations

import math

import numpy as np

from semprobe.probe.errors import ProbeError


def validation_split(
    encoded: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train_rows, val_rows)`` that hold out ``ceil(n * fraction)`` rows.

    The split is stratified when every class has two rows and both parts can hold every class,
    else a seeded permutation. Rows are sorted so that a memmap is read front to back.

    Parameters
    ----------
    encoded:
        ``(n,)`` class indices ``0 .. n_classes - 1``.
    fraction:
        Share of rows held out, in ``(0, 1)``.
    seed:
        Seed of the split.

    Examples
    --------
    >>> y = np.array([0, 1] * 5)
    >>> train, val = validation_split(y, 0.2, seed=0)
    >>> len(train), len(val), sorted(y[val].tolist())
    (8, 2, [0, 1])
    """
    n = len(encoded)
    n_val = math.ceil(n * fraction)
    if n_val < 1 or n - n_val < 2:
        raise ProbeError(f"l1='auto' needs more rows than {n} to hold out a validation split")
    counts = np.bincount(encoded)
    if counts.min() >= 2 and n_val >= len(counts) and n - n_val >= len(counts):
        from sklearn.model_selection import train_test_split

        train_rows, val_rows = train_test_split(
            np.arange(n), test_size=n_val, stratify=encoded, random_state=seed
        )
    else:
        perm = np.random.default_rng(seed).permutation(n)
        val_rows, train_rows = perm[:n_val], perm[n_val:]
    train_rows, val_rows = np.sort(train_rows), np.sort(val_rows)
    if len(np.unique(encoded[train_rows])) < 2:
        raise ProbeError("l1='auto': the training part of the split holds only one class")
    return train_rows, val_rows


def best_l1(scores: dict[float, float]) -> float:
    """The ``l1`` with the highest score; ties go to the largest ``l1``, the sparsest model.

    Examples
    --------
    >>> best_l1({1e-4: 0.9, 1e-3: 0.9, 1e-2: 0.7})
    0.001
    """
    best = max(scores.values())
    return max(v for v, s in scores.items() if s == best)
