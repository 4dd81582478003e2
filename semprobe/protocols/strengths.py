"""Probe strengths (L1 / L2), the held-out validation split, and fitting with a choice of strength.

Every protocol fits :class:`semprobe.probe.SparseLogisticProbe` as
:func:`semprobe.analysis.fit_probe` does (the tau sweep's probe) on the standardised inputs of
:func:`semprobe.analysis.probe_inputs`. With several strengths, a stratified, seeded share of the
training rows is held out, each strength is fitted on the rest and scored there, and the best is
refitted on every training row (the usual linear-evaluation protocol, e.g. Kornblith et al., CVPR
2019). With one strength nothing is held out: the fit is the tau sweep's.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from semprobe.atomic import atomic_path
from semprobe.errors import SemprobeError
from semprobe.probe import SparseLogisticProbe
from semprobe.protocols.rows import accuracies, label_columns, probe_scores
from semprobe.validation import check_int, check_number


@dataclass(frozen=True)
class Strength:
    """One penalty: ``mean CE + l1 * ||W||_1 + l2 / 2 * ||W||_2^2`` on standardised features.

    Examples
    --------
    >>> Strength(l1=1e-5).label, Strength(l2=1e-4).label, Strength().label
    ('l1=1e-05', 'l2=0.0001', 'none')
    """

    l1: float = 0.0
    l2: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "l1", check_number("l1 strength", self.l1, minimum=0.0))
        object.__setattr__(self, "l2", check_number("l2 strength", self.l2, minimum=0.0))

    @property
    def label(self) -> str:
        parts = [f"l1={self.l1:g}"] if self.l1 else []
        parts += [f"l2={self.l2:g}"] if self.l2 else []
        return ",".join(parts) or "none"


#: The linear protocol's default grid: two L2 and two L1 strengths.
DEFAULT_STRENGTHS = (Strength(l2=1e-4), Strength(l2=1e-3), Strength(l1=1e-5), Strength(l1=1e-4))
#: One L2 strength, the tau sweep's: robustness and transfer unless told otherwise.
SWEEP_STRENGTH = (Strength(l2=1e-4),)


def strengths_from(l1: Sequence[float] = (), l2: Sequence[float] = ()) -> tuple[Strength, ...]:
    """Pure-L1 strengths for ``l1``, then pure-L2 ones for ``l2`` (as the authors' ``wd1`` and
    ``wd2`` lists); a 0 in either list is the unpenalised probe.

    Examples
    --------
    >>> [s.label for s in strengths_from(l1=[1e-5], l2=[1e-4, 1e-3])]
    ['l1=1e-05', 'l2=0.0001', 'l2=0.001']
    """
    out = [Strength(l1=v) for v in l1] + [Strength(l2=v) for v in l2]
    if not out:
        raise SemprobeError("give at least one L1 or L2 strength")
    return check_strengths(out)


def check_strengths(strengths: Any) -> tuple[Strength, ...]:
    """Strengths from :class:`Strength` items or ``{"l1": .., "l2": ..}`` tables, distinct."""
    out = []
    for item in strengths:
        if isinstance(item, Strength):
            out.append(item)
        elif isinstance(item, dict) and set(item) <= {"l1", "l2"}:
            out.append(Strength(**item))
        else:
            raise SemprobeError(f"a strength is a table with l1 and/or l2, got {item!r}")
    if not out:
        raise SemprobeError("give at least one L1 or L2 strength")
    if len(set(out)) != len(out):
        raise SemprobeError(f"a strength is given twice in {[s.label for s in out]}")
    return tuple(out)


def check_fraction(name: str, value: Any, upper_open: bool = False) -> float:
    """A fraction in (0, 1] (or (0, 1) with ``upper_open``), else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SemprobeError(f"{name} must be a number in (0, 1], got {value!r}")
    if value <= 0 or value > 1 or (upper_open and value == 1):
        interval = "(0, 1)" if upper_open else "(0, 1]"
        raise SemprobeError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def check_fit_fields(settings: Any) -> None:
    """Check, in place on a frozen settings dataclass, the fields every protocol's fit shares.

    ``strengths`` is normalised to a tuple of :class:`Strength`; ``validation_fraction``,
    ``epochs`` and ``seed`` are checked.
    """
    object.__setattr__(settings, "strengths", check_strengths(settings.strengths))
    check_fraction("validation fraction", settings.validation_fraction, upper_open=True)
    check_int("epochs", settings.epochs)
    check_int("seed", settings.seed, minimum=0)


def holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train_rows, val_rows)``: ``ceil(n * fraction)`` rows held out, stratified by class
    where every class has two rows, else a seeded permutation.

    Examples
    --------
    >>> train, val = holdout(np.array([0, 1] * 5), 0.2, seed=0)
    >>> len(train), len(val)
    (8, 2)
    """
    fraction = check_fraction("validation fraction", fraction, upper_open=True)
    seed = check_int("seed", seed, minimum=0)
    y = np.asarray(labels)
    n = len(y)
    n_val = math.ceil(n * fraction)
    if n - n_val < 2:
        raise SemprobeError(f"{n} training rows are too few to hold out a validation split")
    _, encoded = np.unique(y, return_inverse=True)
    counts = np.bincount(encoded)
    if counts.min() >= 2 and len(counts) <= n_val <= n - len(counts):
        from sklearn.model_selection import train_test_split

        train_rows, val_rows = train_test_split(
            np.arange(n), test_size=n_val, stratify=encoded, random_state=seed
        )
    else:
        perm = np.random.default_rng(seed).permutation(n)
        val_rows, train_rows = perm[:n_val], perm[n_val:]
    return np.sort(train_rows), np.sort(val_rows)


@contextlib.contextmanager
def rows_of(x: Any, rows: np.ndarray) -> Iterator[Any]:
    """``x[rows]`` for a fit: in memory for arrays, a temporary float16 file beside a memory map.

    The temporary file (a large probe input is itself a float16 memory map) is removed on exit.
    """
    filename = getattr(x, "filename", None)
    if not isinstance(x, np.memmap) or not filename:
        yield np.asarray(x[rows])
        return
    path = Path(filename).with_name(f".rows-{os.getpid()}-{id(rows):x}.npy")
    try:
        with atomic_path(path, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=x.dtype, shape=(len(rows), x.shape[1])
            )
            for start in range(0, len(rows), 4096):
                out[start : start + 4096] = x[rows[start : start + 4096]]
            out.flush()
            del out
        yield np.load(path, mmap_mode="r")
    finally:
        path.unlink(missing_ok=True)


def fit(
    x_train: Any,
    y_train: np.ndarray,
    x_eval: Any,
    y_eval: np.ndarray,
    strength: Strength,
    epochs: int,
    seed: int,
    device: str,
) -> tuple[SparseLogisticProbe, dict[str, Any]]:
    """The probe of :func:`semprobe.analysis.fit_probe` (same estimator, same arguments) with one
    strength, scored on ``(x_eval, y_eval)``; also for two classes, and convergence warnings are
    recorded in the statistics instead of printed.

    Returns
    -------
    (SparseLogisticProbe, dict)
        The probe; ``top1``, ``top5``, ``passes``, ``converged`` on the evaluation rows.
    """
    probe = SparseLogisticProbe(
        l1=strength.l1, l2=strength.l2, max_epochs=epochs, device=device, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(x_train, y_train)
    scored = accuracies(probe_scores(probe, x_eval), label_columns(probe, np.asarray(y_eval)))
    return probe, {
        "top1": scored["top1"],
        "top5": scored["top5"],
        "passes": int(probe.n_iter_),
        "converged": bool(probe.converged_),
    }


@dataclass
class Selected:
    """The probe a validation split chose, and what every strength scored on it.

    Attributes
    ----------
    probe: fitted on every training row given (refitted with the chosen strength).
    strength: the chosen one.
    validation: ``strength label -> validation top-1`` (empty with one strength).
    stats: :func:`fit` statistics of the final fit (on its evaluation rows).
    """

    probe: SparseLogisticProbe
    strength: Strength
    validation: dict[str, float] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def fit_selected(
    x_train: Any,
    y_train: np.ndarray,
    x_eval: Any,
    y_eval: np.ndarray,
    strengths: Sequence[Strength],
    fraction: float = 0.1,
    epochs: int = 40,
    seed: int = 0,
    device: str = "cpu",
) -> Selected:
    """Choose a strength on a held-out split of ``x_train`` and refit it on all of ``x_train``.

    Ties in validation accuracy go to the strength listed first.
    """
    strengths = check_strengths(strengths)
    if len(strengths) == 1:
        probe, stats = fit(x_train, y_train, x_eval, y_eval, strengths[0], epochs, seed, device)
        return Selected(probe, strengths[0], {}, stats)
    train_rows, val_rows = holdout(y_train, fraction, seed)
    scores: dict[str, float] = {}
    y_train = np.asarray(y_train)
    with rows_of(x_train, train_rows) as x_part, rows_of(x_train, val_rows) as x_val:
        for strength in strengths:
            _, stats = fit(
                x_part,
                y_train[train_rows],
                x_val,
                y_train[val_rows],
                strength,
                epochs,
                seed,
                device,
            )
            scores[strength.label] = float(stats["top1"])
    best = max(scores.values())
    chosen = next(s for s in strengths if scores[s.label] == best)
    probe, stats = fit(x_train, y_train, x_eval, y_eval, chosen, epochs, seed, device)
    return Selected(probe, chosen, scores, stats)
