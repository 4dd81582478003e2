"""The checks of :func:`semprobe.entropy.entropy_report`'s arguments, in the order it makes them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from semprobe.entropy.moments import Spec
from semprobe.entropy.quantiles import check_quantiles
from semprobe.entropy.runner import default_chunk_rows
from semprobe.errors import SemprobeError
from semprobe.sem import check_shape
from semprobe.validation import check_class_indices, check_int, check_taus


@dataclass(frozen=True)
class Request:
    """The checked arguments of an entropy analysis."""

    array: np.ndarray
    taus: list[float]
    labels: np.ndarray | None
    probs: list[float]
    chunk_rows: int
    workers: int
    spec: Spec


def check_request(
    logits: Any,
    num_simplices: Any,
    vocab: Any,
    taus: Any,
    labels: Any,
    class_names: Sequence[str] | None,
    superclass_of: Sequence[str] | Mapping[Any, str] | None,
    *,
    bins: Any,
    eps: Any,
    chunk_rows: Any,
    quantiles: Sequence[float],
    quantile_bins: Any,
    num_threads: Any,
    device: Any,
) -> Request:
    """Check every argument; the first bad one raises :class:`SemprobeError` naming it."""
    array, num_simplices, vocab = _check_layout(logits, num_simplices, vocab)
    tau_list = check_taus(taus, empty_message="taus is empty: give at least one temperature")
    bins = _positive_int("bins", bins)
    quantile_bins = _positive_int("quantile_bins", quantile_bins)
    eps = _check_eps(eps)
    probs = check_quantiles(quantiles)
    label_arr, num_classes = _check_labels(labels, array.shape[0], class_names, superclass_of)
    dev = _check_device(device)
    workers = torch.get_num_threads() if num_threads is None else num_threads
    workers = _positive_int("num_threads", workers)
    if chunk_rows is None:
        chunk_rows = default_chunk_rows(num_simplices, vocab, len(tau_list))
    chunk_rows = min(_positive_int("chunk_rows", chunk_rows), array.shape[0])
    spec = Spec.make(
        len(tau_list), num_simplices, vocab, num_classes, bins, quantile_bins, eps, dev
    )
    return Request(array, tau_list, label_arr, probs, chunk_rows, workers, spec)


def _positive_int(name: str, value: Any) -> int:
    return check_int(name, value, expected="a positive integer")


def _check_layout(logits: Any, num_simplices: Any, vocab: Any) -> tuple[np.ndarray, int, int]:
    """The logits as a 2-D float array, with L and V that match its width (V >= 2)."""
    array = _as_array(logits)
    num_simplices = _positive_int("num_simplices", num_simplices)
    vocab = _positive_int("vocab", vocab)
    check_shape(array.shape[1], num_simplices, vocab)
    if vocab < 2:
        raise SemprobeError(f"vocab must be >= 2 for an entropy analysis, got {vocab}")
    return array, num_simplices, vocab


def _as_array(logits: Any) -> np.ndarray:
    """``logits`` as an ``(N, L*V)`` numpy float array with N >= 1 (a memory map stays one)."""
    if isinstance(logits, torch.Tensor):
        logits = logits.detach().cpu().numpy()
    elif not isinstance(logits, np.ndarray):
        try:
            logits = np.asarray(logits)
        except (TypeError, ValueError):
            raise SemprobeError(f"logits must be an array, got {type(logits).__name__}") from None
    if logits.ndim != 2:
        raise SemprobeError(f"logits must have shape (N, L*V), got shape {logits.shape}")
    if logits.dtype.kind != "f" or logits.dtype.itemsize not in (2, 4, 8):
        raise SemprobeError(f"logits must be float16 or float32, got dtype {logits.dtype}")
    if logits.shape[0] == 0:
        raise SemprobeError("logits has no rows (N = 0)")
    return logits


def _check_eps(eps: Any) -> float:
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise SemprobeError(f"eps must be a positive number, got {eps!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SemprobeError(f"eps must be a positive number, got {value!r}")
    return value


def _check_labels(
    labels: Any,
    n: int,
    class_names: Sequence[str] | None,
    superclass_of: Sequence[str] | Mapping[Any, str] | None,
) -> tuple[np.ndarray | None, int]:
    """The labels as ``(n,)`` int64 class indices (or None) and the number of classes."""
    if class_names is not None and labels is None:
        raise SemprobeError("class_names needs labels")
    if superclass_of is not None and labels is None:
        raise SemprobeError("superclass_of needs labels")
    if labels is None:
        return None, 0
    return check_class_indices(labels, n, class_names)


def _check_device(device: Any) -> torch.device:
    try:
        return torch.device(device) if device is not None else torch.device("cpu")
    except (RuntimeError, TypeError) as exc:
        raise SemprobeError(f"bad device {device!r}: {exc}") from None
