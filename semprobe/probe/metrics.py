"""Scores of a probe's predictions, and the translation of its penalty to scikit-learn's ``C``."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from semprobe.probe.errors import ProbeError


def sklearn_C(l1: float, n_samples: int) -> float:
    """scikit-learn's ``C`` that gives the same L1-penalised solution as ``l1`` on ``n_samples``.

    scikit-learn scales the data term by ``C * n_samples`` relative to ours, hence the inverse
    (the derivation is in ``docs/probe.md``).

    Parameters
    ----------
    l1:
        Our L1 strength (> 0), as in ``loss = mean CE + l1 * ||W||_1``.
    n_samples:
        Number of training rows.

    Returns
    -------
    float
        ``1 / (n_samples * l1)``.

    Examples
    --------
    >>> sklearn_C(1e-4, 5000)
    2.0
    """
    if l1 <= 0 or n_samples <= 0:
        raise ProbeError(f"need l1 > 0 and n_samples > 0, got l1={l1!r}, n_samples={n_samples!r}")
    return 1.0 / (n_samples * l1)


def top_k_accuracy(
    y_true: Any, scores: Any, k: int = 5, classes: Sequence[Any] | np.ndarray | None = None
) -> float:
    """Fraction of rows whose true class is among the ``k`` highest scores.

    Parameters
    ----------
    y_true:
        ``(n,)`` labels. Column indices of ``scores`` unless ``classes`` is given.
    scores:
        ``(n, n_classes)`` scores or probabilities (higher is better).
    k:
        How many top classes count as a hit, ``1 <= k``; ``k >= n_classes`` gives 1.0.
    classes:
        The label of each column of ``scores`` (e.g. a probe's ``classes_``); labels not in it
        count as misses.

    Returns
    -------
    float
        Top-k accuracy in ``[0, 1]``. Ties are resolved in favour of the true class: a row is a
        hit when fewer than ``k`` classes score strictly higher than the true one.

    Examples
    --------
    >>> scores = [[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]]
    >>> top_k_accuracy([2, 0, 0], scores, k=1)
    0.3333333333333333
    >>> top_k_accuracy(["c", "a", "a"], scores, k=2, classes=["a", "b", "c"])
    0.6666666666666666
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ProbeError(f"k must be a positive integer, got {k!r}")
    score_arr = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(y_true)
    _check_shapes(labels, score_arr)
    if classes is None:
        known, index = _column_indices(labels, score_arr.shape[1])
    else:
        known, index = _class_columns(labels, np.asarray(classes), score_arr.shape[1])
    index = np.where(known, index, 0)
    true_score = score_arr[np.arange(len(labels)), index]
    higher = (score_arr > true_score[:, None]).sum(axis=1)
    return float(np.mean(known & (higher < k)))


def _check_shapes(labels: np.ndarray, scores: np.ndarray) -> None:
    if scores.ndim != 2:
        raise ProbeError(f"scores must be 2-D (n, n_classes), got shape {scores.shape}")
    if labels.ndim != 1 or len(labels) != scores.shape[0]:
        raise ProbeError(
            f"y_true must be 1-D with one label per row of scores ({scores.shape[0]}), "
            f"got shape {labels.shape}"
        )
    if len(labels) == 0:
        raise ProbeError("top_k_accuracy needs at least one row")


def _column_indices(labels: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels that are column indices: which are in range, and the indices."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise ProbeError("y_true must hold integer column indices when classes is not given")
    index = labels.astype(np.int64)
    return (index >= 0) & (index < n_columns), index


def _class_columns(
    labels: np.ndarray, classes: np.ndarray, n_columns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which labels are in ``classes``, and the column of each (arbitrary where not)."""
    if len(classes) != n_columns:
        raise ProbeError(f"classes has {len(classes)} entries but scores has {n_columns} columns")
    order = np.argsort(classes, kind="stable")
    pos = np.searchsorted(classes[order], labels)
    pos = np.clip(pos, 0, len(classes) - 1)
    return classes[order][pos] == labels, order[pos]
