"""The probe's hyperparameters, checked once when a fit or a prediction starts.

scikit-learn estimators keep their constructor arguments as given and check them in ``fit``;
:func:`fit_params` does that and returns them in the types the solver uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from semprobe.probe.errors import ProbeError
from semprobe.validation import check_int, check_number

if TYPE_CHECKING:
    from semprobe.probe.estimator import SparseLogisticProbe

#: The ``l1`` values tried by ``l1="auto"`` unless ``l1_grid`` is given: half-decade steps.
DEFAULT_L1_GRID: tuple[float, ...] = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3)


@dataclass(frozen=True)
class FitParams:
    """A probe's checked hyperparameters; see :class:`SparseLogisticProbe` for their meaning.

    ``seed`` is ``random_state`` (0 for ``None``), ``grid`` is ``l1_grid`` (the default grid for
    ``None``) and ``fraction`` is ``validation_fraction``.
    """

    l1: float | str
    grid: tuple[float, ...]
    l2: float
    max_epochs: int
    batch_size: int
    tol: float
    history: int
    device: torch.device
    seed: int
    fraction: float
    n_threads: int | None


def fit_params(probe: SparseLogisticProbe) -> FitParams:
    """Check the hyperparameters of ``probe``.

    Raises
    ------
    ProbeError
        Naming the first bad parameter and its value.
    """
    l1 = _check_l1(probe.l1)
    grid = _check_grid(probe.l1_grid)
    device = check_device(probe.device)
    if probe.random_state is not None:
        _int("random_state", probe.random_state, minimum=0)
    fraction = _number("validation_fraction", probe.validation_fraction, minimum=0.0, strict=True)
    if fraction >= 1:
        raise ProbeError(f"validation_fraction must be < 1, got {probe.validation_fraction!r}")
    return FitParams(
        l1=l1,
        grid=grid,
        l2=_number("l2", probe.l2, minimum=0.0),
        max_epochs=_int("max_epochs", probe.max_epochs, minimum=1),
        batch_size=_int("batch_size", probe.batch_size, minimum=1),
        tol=_number("tol", probe.tol, minimum=0.0),
        history=_int("history", probe.history, minimum=1),
        device=device,
        seed=0 if probe.random_state is None else int(probe.random_state),
        fraction=fraction,
        n_threads=check_threads(probe.n_threads),
    )


def check_device(value: Any) -> torch.device:
    """``value`` as a torch device that exists on this machine."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ProbeError(f"device must be a torch device such as 'cpu', got {value!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProbeError(f"device {value!r} requested but CUDA is not available")
    return device


def check_threads(value: Any) -> int | None:
    """``n_threads``: ``None`` or a positive integer."""
    return None if value is None else _int("n_threads", value, minimum=1)


def check_batch_size(value: Any) -> int:
    """``batch_size``: a positive integer."""
    return _int("batch_size", value, minimum=1)


def _check_l1(value: Any) -> float | str:
    if isinstance(value, str):
        if value != "auto":
            raise ProbeError(f"l1 must be a non-negative number or 'auto', got {value!r}")
        return "auto"
    return _number("l1", value, minimum=0.0)


def _check_grid(value: Any) -> tuple[float, ...]:
    if value is None:
        return DEFAULT_L1_GRID
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        raise ProbeError(f"l1_grid must be a sequence of numbers, got {value!r}")
    grid = tuple(_number("l1_grid value", v, minimum=0.0) for v in value)
    if not grid:
        raise ProbeError("l1_grid must not be empty")
    return grid


def _int(name: str, value: Any, *, minimum: int) -> int:
    return check_int(name, value, minimum=minimum, error=ProbeError)


def _number(name: str, value: Any, *, minimum: float, strict: bool = False) -> float:
    return check_number(name, value, minimum=minimum, strict=strict, error=ProbeError)
