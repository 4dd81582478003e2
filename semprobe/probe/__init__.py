"""Sparse (L1) multinomial logistic-regression probes that stream their features from disk.

A sparse probe on the SEM representation of a training set shows which simplex vertices each
class relies on. :class:`SparseLogisticProbe` is a scikit-learn estimator that minimises::

    mean_i CE(softmax(W x_i + b), y_i) + l1 * ||W||_1 + l2 / 2 * ||W||_2^2

with OWL-QN in torch, reading ``X`` one block of rows at a time (an ``np.memmap`` works as is),
on the CPU or a CUDA device, so ``X`` never has to fit in memory.

Modules: ``estimator`` (the estimator), ``params`` and ``inputs`` (checks of its arguments),
``stream`` (blocks of rows), ``stats`` (feature means), ``objective`` (loss and gradient),
``owlqn`` (the solver), ``selection`` (``l1="auto"``), ``threads``, ``metrics`` and ``errors``.
The derivations and measurements behind the design are in ``docs/probe.md``.
"""

from __future__ import annotations

from semprobe.probe.errors import ProbeError, ProbeTypeError
from semprobe.probe.estimator import SparseLogisticProbe
from semprobe.probe.metrics import sklearn_C, top_k_accuracy
from semprobe.probe.params import DEFAULT_L1_GRID

__all__ = [
    "DEFAULT_L1_GRID",
    "ProbeError",
    "ProbeTypeError",
    "SparseLogisticProbe",
    "sklearn_C",
    "top_k_accuracy",
]
