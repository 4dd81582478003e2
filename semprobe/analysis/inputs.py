"""The probe's inputs (one representation of cached features) and the fitted probe's scores."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

import semprobe.features as feature_cache
from semprobe.analysis.settings import RelevanceSettings
from semprobe.atomic import atomic_path
from semprobe.features import FeatureSet
from semprobe.probe import SparseLogisticProbe, top_k_accuracy
from semprobe.sem import sem_softmax


def probe_inputs(
    train: FeatureSet, test: FeatureSet, representation: str, tau: float, standardize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The probe's train and test matrices for one representation (:func:`standardized_inputs`
    without the standardisation's statistics)."""
    x_train, x_test, _ = standardized_inputs(train, test, representation, tau, standardize)
    return x_train, x_test


def standardized_inputs(
    train: FeatureSet, test: FeatureSet, representation: str, tau: float, standardize: bool = True
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """The probe's train and test matrices for one representation, and how they were scaled.

    ``sem`` is the SEM output at ``tau``; ``backbone`` the backbone features (f_base); ``logits``
    the embedder's pre-softmax output. With ``standardize`` every column is centred and scaled by
    the train split's mean and std, so that one L1 strength means the same for every
    representation and tau (SEM outputs near 1/V would otherwise be zeroed by any L1 that suits
    backbone features); the probe's weights are then in units of standard deviations.

    Matrices larger than :data:`semprobe.features.IN_MEMORY_LIMIT` (as float32) are computed block
    by block into float16 files in the cache directory and returned memory-mapped, so the
    paper-scale 50,000 x 65,000 case never sits in memory.

    Returns
    -------
    x_train, x_test:
        ``(n_train, F)`` and ``(n_test, F)``.
    scaling:
        ``(mean, std)``, each ``(F,)`` float32, with ``x = (features - mean) / std``; None
        without ``standardize``. Whoever applies the probe to new inputs (an intervention) needs
        them.
    """
    width = _width(train, representation)
    # Read at call time (tests lower the limit to exercise the memory-mapped path).
    large = len(train.labels) * width * 4 > feature_cache.IN_MEMORY_LIMIT
    if not large:
        x_train = _block(train, representation, tau, 0, len(train.labels))
        x_test = _block(test, representation, tau, 0, len(test.labels))
        if not standardize:
            return x_train, x_test, None
        mean = x_train.mean(axis=0, dtype=np.float64).astype(np.float32)
        std = x_train.std(axis=0, dtype=np.float64).astype(np.float32) + np.float32(1e-6)
        return (x_train - mean) / std, (x_test - mean) / std, (mean, std)
    name = representation + (f"_tau{tau:g}" if representation == "sem" else "")
    name += "_std" if standardize else ""
    mean = np.zeros(width, dtype=np.float32)
    std = np.ones(width, dtype=np.float32)
    if standardize:
        mean, std = _column_stats(train, representation, tau, width)
    return (
        _to_file(train, representation, tau, mean, std, train.directory / f"probe_{name}.npy"),
        _to_file(test, representation, tau, mean, std, test.directory / f"probe_{name}.npy"),
        (mean, std) if standardize else None,
    )


def _width(fs: FeatureSet, representation: str) -> int:
    return int(
        fs.features.shape[1] if representation == "backbone" else fs.require_logits().shape[1]
    )


def _block(fs: FeatureSet, representation: str, tau: float, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of one representation, float32."""
    if representation == "backbone":
        return np.array(fs.features[start:stop], dtype=np.float32)
    logits = np.array(fs.require_logits()[start:stop], dtype=np.float32)
    if representation == "logits":
        return logits
    return sem_softmax(torch.from_numpy(logits), fs.num_simplices, fs.vocab, tau).numpy()


def _column_stats(
    fs: FeatureSet, representation: str, tau: float, width: int, rows: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std (float64 accumulation), one block of rows at a time."""
    total = np.zeros(width, dtype=np.float64)
    squares = np.zeros(width, dtype=np.float64)
    n = len(fs.labels)
    for start in range(0, n, rows):
        block = _block(fs, representation, tau, start, start + rows).astype(np.float64)
        total += block.sum(0)
        squares += (block * block).sum(0)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32) + np.float32(1e-6)


def _to_file(
    fs: FeatureSet,
    representation: str,
    tau: float,
    mean: np.ndarray,
    std: np.ndarray,
    path: Path,
    rows: int = 2048,
) -> np.ndarray:
    """``(x - mean) / std`` written once as a float16 ``.npy`` (atomically), memory-mapped."""
    n = len(fs.labels)
    if not path.exists():
        with atomic_path(path, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, len(mean)))
            for start in range(0, n, rows):
                block = _block(fs, representation, tau, start, start + rows)
                out[start : start + rows] = (block - mean) / std
            out.flush()
            del out
    return np.load(path, mmap_mode="r")


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    settings: RelevanceSettings,
    device: str = "cpu",
) -> tuple[SparseLogisticProbe, dict[str, Any]]:
    """Fit the sparse probe and measure it on the test split."""
    probe = SparseLogisticProbe(
        l1=settings.l1,
        l2=settings.l2,
        max_epochs=settings.epochs,
        device=device,
        random_state=settings.seed,
    )
    with warnings.catch_warnings():
        # Convergence is recorded in the summary instead of being printed.
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(x_train, y_train)
    scores = probe.decision_function(x_test)
    coef = probe.coef_
    stats = {
        "top1": float(top_k_accuracy(y_test, scores, 1, classes=probe.classes_)),
        "top5": float(
            top_k_accuracy(y_test, scores, min(5, scores.shape[1]), classes=probe.classes_)
        ),
        "l1": float(getattr(probe, "l1_", settings.l1)),
        "l2": settings.l2,
        "sparsity": float(np.mean(coef == 0)),
        "nonzero_weights": int(np.count_nonzero(coef)),
        "features_used": int(np.count_nonzero(np.any(coef != 0, axis=0))),
        "passes": int(probe.n_iter_),
        "converged": bool(probe.converged_),
    }
    return probe, stats
