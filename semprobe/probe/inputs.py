"""Coercion of the probe's inputs: ``X`` to a row-sliceable 2-D array, ``y`` to class labels.

The checks follow scikit-learn's estimator contract (its messages, and its error types where the
estimator checks test them), since :class:`SparseLogisticProbe` is a scikit-learn estimator.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from semprobe.probe.errors import ProbeError, ProbeTypeError


def is_sparse(X: Any) -> bool:
    """Whether ``X`` is a SciPy sparse matrix or array."""
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return bool(sp.issparse(X))


def as_2d(X: Any, name: str = "X") -> Any:
    """``X`` as something row-sliceable with ``.shape`` and a numeric dtype, without copying it.

    Parameters
    ----------
    X:
        A NumPy array or ``np.memmap``, a SciPy sparse matrix (returned as CSR), a torch tensor, or
        anything ``np.asarray`` accepts.
    name:
        How errors name the input.

    Returns
    -------
    Any
        A 2-D array or CSR matrix with at least one row and one column.
    """
    if X is None:
        raise ProbeError(f"{name} is None; expected an array of shape (n_samples, n_features)")
    if is_sparse(X):
        if X.ndim != 2:
            raise ProbeError(f"{name} must be 2-D, got a sparse matrix of shape {X.shape}")
        X = X.tocsr()
    else:
        X = _dense_2d(X, name)
    if X.shape[1] == 0:
        raise ProbeError(
            f"0 feature(s) (shape=({X.shape[0]}, 0)) while a minimum of 1 is required."
        )
    if X.shape[0] == 0:
        raise ProbeError(f"0 sample(s) (shape=(0, {X.shape[1]})) while a minimum of 1 is required.")
    return X


def _dense_2d(X: Any, name: str) -> np.ndarray:
    """A dense ``X`` as a 2-D real ndarray; arrays (and memmaps) pass through uncopied."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if not isinstance(X, np.ndarray):
        # Lists and data frames are in memory already: converting them copies nothing that was
        # on disk.
        try:
            X = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise ProbeError(f"{name} cannot be read as a numeric array: {exc}") from None
    if X.ndim != 2:
        raise ProbeError(
            f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}. Reshape your "
            "data with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample"
        )
    if X.dtype.kind == "c":
        raise ProbeError(f"Complex data not supported; {name} has dtype {X.dtype}")
    if X.dtype.kind == "O":
        # Object arrays live in memory; numbers stored as objects are accepted.
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ProbeTypeError(f"{name} must be numeric, got dtype object: {exc}") from None
    if X.dtype.kind not in "biuf":
        raise ProbeError(f"{name} must be numeric, got dtype {X.dtype}")
    return X


def check_labels(y: Any, n: int) -> np.ndarray:
    """``y`` as a 1-D array of ``n`` class labels, or a :class:`ProbeError` saying what is wrong.

    A column vector is flattened with scikit-learn's ``DataConversionWarning``; continuous targets
    are refused by scikit-learn's own check.
    """
    from sklearn.exceptions import DataConversionWarning
    from sklearn.utils.multiclass import check_classification_targets

    if y is None:
        raise ProbeError("SparseLogisticProbe requires y to be passed, but the target y is None")
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected; it was flattened",
            DataConversionWarning,
            stacklevel=3,
        )
        labels = labels.ravel()
    if labels.ndim != 1:
        raise ProbeError(f"y must be 1-D, got shape {labels.shape}")
    if len(labels) != n:
        raise ProbeError(f"X has {n} rows but y has {len(labels)} labels")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ProbeError("y contains NaN or infinity")
    try:
        # Rejects continuous targets (floats that are not whole numbers) by name.
        check_classification_targets(labels)
    except ValueError as exc:
        raise ProbeError(str(exc)) from None
    return labels
