"""Interventions on one simplex: set it to a chosen vertex and read the probe's answer.

The relevance score of Lavoie et al. (ICLR 2023, arXiv 2204.00616) says which features a linear
probe leans on; an intervention says what the probe does when one simplex changes and nothing
else does. The SEM output of simplex ``i`` of each image, ``softmax(z_i / tau)``, is replaced by

* ``"one-hot"``: the vertex ``e_v`` itself, or
* ``"mean"``: the vertex's mean profile, the mean SEM output of that simplex over the images
  whose largest vertex is ``v`` (:func:`vertex_profiles`), a point the model actually produces;

and the probe's class probabilities (softmax of ``x @ coef.T + intercept``, with
``x = (sem - mean) / std`` when the probe was fitted on standardised inputs) are compared before
and after. Only the simplex's V columns change, so the change of the scores is computed from
those columns alone (``O(n V C)``), not by applying the probe again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from semprobe.errors import SemprobeError
from semprobe.sem import check_shape, sem_softmax

VALUES = ("one-hot", "mean")


@dataclass(frozen=True)
class LinearProbe:
    """A linear probe on SEM outputs at temperature ``tau``.

    Attributes
    ----------
    coef:
        ``(C, L*V)`` weights (simplex-major features, as :func:`semprobe.sem.sem_softmax` gives).
    intercept:
        ``(C,)``.
    tau:
        The SEM temperature of the probe's inputs.
    mean, std:
        ``(L*V,)`` the standardisation of the inputs (:func:`semprobe.analysis.probe_inputs`
        with ``standardize``), or None for raw SEM outputs.
    """

    coef: np.ndarray
    intercept: np.ndarray
    tau: float
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def inputs(self, sem: np.ndarray) -> np.ndarray:
        """The probe's inputs for ``(n, L*V)`` SEM outputs."""
        if self.mean is None or self.std is None:
            return sem
        return (sem - self.mean) / self.std


@dataclass(frozen=True)
class Intervention:
    """Class probabilities ``(n, C)`` of the probe before and after the edit, float64."""

    simplex: int
    vertex: int
    value: str
    before: np.ndarray
    after: np.ndarray

    @property
    def change(self) -> np.ndarray:
        """``after - before``, ``(n, C)``."""
        return self.after - self.before


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=1, keepdims=True)


def _sem(logits: np.ndarray, num_simplices: int, vocab: int, tau: float) -> np.ndarray:
    z = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    return sem_softmax(z, num_simplices, vocab, tau).numpy()


def vertex_profiles(
    logits: np.ndarray, num_simplices: int, vocab: int, simplex: int, tau: float
) -> np.ndarray:
    """Mean SEM output of ``simplex`` over the images assigned to each of its vertices.

    Returns
    -------
    numpy.ndarray
        ``(V, V)``: row ``v`` is the mean of ``softmax(z_simplex / tau)`` over the images whose
        largest logit in the simplex is ``v``; NaN for a vertex no image is assigned to.

    Examples
    --------
    >>> z = np.array([[3.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    >>> vertex_profiles(z, 1, 2, 0, 1.0).round(3).tolist()
    [[0.917, 0.083], [0.269, 0.731]]
    """
    _check(logits, num_simplices, vocab, simplex, 0)
    cols = slice(simplex * vocab, (simplex + 1) * vocab)
    p = _sem(np.asarray(logits[:, cols]), 1, vocab, tau)
    assigned = np.asarray(logits[:, cols]).argmax(axis=1)
    counts = np.bincount(assigned, minlength=vocab).astype(np.float64)
    sums = np.zeros((vocab, vocab))
    np.add.at(sums, assigned, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def _check(
    logits: np.ndarray,
    num_simplices: int,
    vocab: int,
    simplex: int,
    vertex: int,
    value: str = "one-hot",
) -> None:
    if value not in VALUES:
        raise SemprobeError(f"value must be one of {', '.join(VALUES)}, got {value!r}")
    if np.ndim(logits) != 2:
        raise SemprobeError(f"logits must be (n, L*V), got shape {np.shape(logits)}")
    check_shape(logits.shape[1], num_simplices, vocab)
    if not 0 <= simplex < num_simplices:
        raise SemprobeError(f"simplex {simplex} is out of range [0, {num_simplices})")
    if not 0 <= vertex < vocab:
        raise SemprobeError(f"vertex {vertex} is out of range [0, {vocab})")


def intervene(
    logits: np.ndarray,
    probe: LinearProbe,
    num_simplices: int,
    vocab: int,
    simplex: int,
    vertex: int,
    value: str = "one-hot",
    profiles: np.ndarray | None = None,
) -> Intervention:
    """Set ``simplex`` of every row of ``logits`` to ``vertex``; the probe's probabilities.

    Parameters
    ----------
    logits:
        ``(n, L*V)`` pre-softmax SEM logits of the images to edit (one image, or all images of
        a class).
    probe:
        The probe and how its inputs are made.
    simplex, vertex:
        What to set.
    value:
        ``"one-hot"`` (the vertex) or ``"mean"`` (its mean profile, row ``vertex`` of
        ``profiles``, by default :func:`vertex_profiles` of these ``logits``).
    profiles:
        ``(V, V)`` mean profiles, e.g. computed over the whole test split.

    Returns
    -------
    Intervention
        ``before`` and ``after``: ``(n, C)`` class probabilities.

    Examples
    --------
    >>> probe = LinearProbe(np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2), tau=1.0)
    >>> edit = intervene(np.array([[0.0, 0.0]]), probe, 1, 2, simplex=0, vertex=1)
    >>> edit.before.round(3).tolist(), edit.after.round(3).tolist()
    ([[0.5, 0.5]], [[0.269, 0.731]])
    """
    _check(logits, num_simplices, vocab, simplex, vertex, value)
    base = _Scored.of(logits, probe, num_simplices, vocab)
    if value == "mean" and profiles is None:
        profiles = vertex_profiles(logits, num_simplices, vocab, simplex, probe.tau)
    target = _target(simplex, vertex, vocab, value, profiles)
    return Intervention(simplex, vertex, value, base.before, base.after(simplex, target))


@dataclass(frozen=True)
class _Scored:
    """The probe applied once to unedited SEM outputs; every edit of one simplex reuses it."""

    probe: LinearProbe
    coef: np.ndarray  # (C, L*V) float64
    sem: np.ndarray  # (n, L*V)
    scores: np.ndarray  # (n, C)
    vocab: int

    @classmethod
    def of(cls, logits: np.ndarray, probe: LinearProbe, num_simplices: int, vocab: int) -> _Scored:
        coef = np.asarray(probe.coef, dtype=np.float64)
        if coef.ndim != 2 or coef.shape[1] != num_simplices * vocab:
            raise SemprobeError(
                f"the probe has {coef.shape[-1]} features, not L*V = {num_simplices * vocab}"
            )
        sem = _sem(logits, num_simplices, vocab, probe.tau)
        scores = probe.inputs(sem) @ coef.T + np.asarray(probe.intercept, dtype=np.float64)
        return cls(probe, coef, sem, scores, vocab)

    @property
    def before(self) -> np.ndarray:
        return _softmax(self.scores)

    def after(self, simplex: int, target: np.ndarray) -> np.ndarray:
        """Class probabilities with ``simplex`` of every row set to ``target`` ``(V,)``: only
        that simplex's inputs change, so the scores move by their step times its weights."""
        cols = slice(simplex * self.vocab, (simplex + 1) * self.vocab)
        step = target[None, :] - self.sem[:, cols]
        if self.probe.std is not None:
            step = step / np.asarray(self.probe.std, dtype=np.float64)[cols]
        return _softmax(self.scores + step @ self.coef[:, cols].T)


def _target(
    simplex: int, vertex: int, vocab: int, value: str, profiles: np.ndarray | None
) -> np.ndarray:
    """What ``simplex`` is set to: the one-hot ``vertex`` or its mean profile."""
    if value == "one-hot":
        return np.eye(vocab)[vertex]
    target = np.asarray(profiles, dtype=np.float64)[vertex]
    if target.shape != (vocab,) or not np.isfinite(target).all():
        raise SemprobeError(
            f"vertex {vertex} of simplex {simplex} has no mean profile: no image is assigned to it"
        )
    return target


def vertex_effects(
    logits: np.ndarray,
    probe: LinearProbe,
    num_simplices: int,
    vocab: int,
    simplex: int,
    value: str = "one-hot",
    profiles: np.ndarray | None = None,
) -> np.ndarray:
    """Per vertex, the mean change of each class's probability when ``simplex`` is set to it.

    Returns
    -------
    numpy.ndarray
        ``(V, C)``: row ``v`` is the mean over the rows of ``logits`` of
        :func:`intervene`'s ``change`` for vertex ``v`` (NaN rows for ``"mean"`` where a
        vertex has no profile).
    """
    _check(logits, num_simplices, vocab, simplex, 0, value)
    if value == "mean" and profiles is None:
        profiles = vertex_profiles(logits, num_simplices, vocab, simplex, probe.tau)
    # The probe runs once over all L*V inputs; each of the V edits then touches V columns.
    base = _Scored.of(logits, probe, num_simplices, vocab)
    before = base.before
    rows = []
    for v in range(vocab):
        if value == "mean" and not np.isfinite(np.asarray(profiles)[v]).all():
            rows.append(np.full(np.shape(probe.coef)[0], np.nan))
            continue
        target = _target(simplex, v, vocab, value, profiles)
        rows.append((base.after(simplex, target) - before).mean(axis=0))
    return np.stack(rows)
