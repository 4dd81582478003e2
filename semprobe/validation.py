"""Checks of user-supplied values, each raising :class:`SemprobeError` that names the bad value.

One policy for every entry point (the CLI, study files, the Python API): a value is checked once,
where it enters, by the function here for its kind.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from semprobe.errors import SemprobeError


def check_tau(tau: Any) -> float:
    """``tau`` as a float, or an error unless it is a finite positive number.

    Examples
    --------
    >>> check_tau("0.5")
    0.5
    """
    try:
        value = float(tau)
    except (TypeError, ValueError):
        raise SemprobeError(f"tau must be a positive number, got {tau!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SemprobeError(f"tau must be a positive finite number, got {tau!r}")
    return value


def check_taus(taus: Any, *, empty_message: str = "give at least one tau, got none") -> list[float]:
    """A non-empty list of distinct valid temperatures, in the given order.

    A single number is taken as a list of one. A tau given twice is an error (it is a typo more
    often than an intention, and would silently repeat a whole analysis). ``empty_message`` is
    the error for an empty list.

    Examples
    --------
    >>> check_taus([0.1, 1])
    [0.1, 1.0]
    """
    if isinstance(taus, str | bytes) or not isinstance(taus, Iterable):
        taus = [taus]
    values = list(taus)
    if not values:
        raise SemprobeError(empty_message)
    checked = [check_tau(t) for t in values]
    seen: set[float] = set()
    for raw, value in zip(values, checked, strict=True):
        if value in seen:
            raise SemprobeError(f"tau {raw!r} is given twice")
        seen.add(value)
    return checked


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int = 1,
    expected: str | None = None,
    error: type[SemprobeError] = SemprobeError,
) -> int:
    """``value`` as an int, or an error naming ``name`` unless it is an integer >= ``minimum``.

    ``expected`` words the error (``"{name} must be {expected}, got ..."``); default
    ``"an integer >= {minimum}"``. ``error`` is the :class:`SemprobeError` subclass raised.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        wanted = f"an integer >= {minimum}" if expected is None else expected
        raise error(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float,
    strict: bool = False,
    error: type[SemprobeError] = SemprobeError,
) -> float:
    """``value`` as a float, or an error unless finite and >= ``minimum`` (> with ``strict``).

    ``error`` is the :class:`SemprobeError` subclass raised.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out) or out < minimum or (strict and out == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise error(f"{name} must be a finite number {bound}, got {value!r}")
    return out


def check_class_indices(
    labels: Any, n: int, class_names: Sequence[str] | None = None
) -> tuple[np.ndarray, int]:
    """``labels`` as ``n`` int64 class indices, and the number of classes.

    Whole-valued floats are accepted; the number of classes is ``len(class_names)`` when given
    (every label must have a name), else ``max(labels) + 1``.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise SemprobeError(f"labels must have shape ({n},) to match the data, got {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise SemprobeError(f"labels must be integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if n == 0:
        return arr, 0 if class_names is None else len(class_names)
    low, high = int(arr.min()), int(arr.max())
    if low < 0:
        raise SemprobeError(f"labels must be >= 0, got {low}")
    if class_names is not None:
        if high >= len(class_names):
            raise SemprobeError(
                f"label {high} has no name: class_names has {len(class_names)} entries"
            )
        return arr, len(class_names)
    return arr, high + 1
