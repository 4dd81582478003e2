"""The paper's evaluation protocols and the SSL community's standard ones, from cached features.

Every protocol reads the feature cache (:mod:`semprobe.features`): the backbone runs once per
(checkpoint, dataset, transform), and any SEM temperature is applied to the cached logits.

* :mod:`.knn` -- exact weighted kNN, streamed (solo-learn's k = 20, T = 0.07 and lightly's
  k = 200, T = 0.1), on the backbone features, the pre-softmax embedding or ``softmax(z / tau)``;
* :mod:`.linear_grid` -- the SEM authors' linear protocol: probes trained at each ``tau_train``
  and evaluated at each ``tau_eval``, over L1 / L2 strengths, beside the two baselines;
* :mod:`.robustness` (with :mod:`.label_fraction`) -- Table 2: probes with 100 % and 1 % of the
  labels, scored on ImageNet-V2 / -R / -A (class subsets) and ImageNet-C;
* :mod:`.transfer` -- Table 3: a probe per target dataset, one table for several checkpoints;
* :mod:`.evaluate` -- each of them for a list of checkpoints, into a run directory
  (:mod:`.reports`) that the dashboard opens.

Shared parts: :mod:`.rows` (blocks of one representation), :mod:`.strengths` (penalties and the
validation split), :mod:`.figures`. Conventions and measurements: ``docs/protocols.md``.

Examples
--------
>>> from semprobe.protocols import KNNSettings
>>> KNNSettings().pairs
[(20, 0.07, 'solo-learn'), (200, 0.1, 'lightly')]
"""

from __future__ import annotations

from semprobe.protocols.evaluate import (
    ProtocolRun,
    run_knn,
    run_linear_grid,
    run_robustness,
    run_transfer,
)
from semprobe.protocols.knn import KNNSettings, knn_accuracy, knn_table, nearest_neighbours
from semprobe.protocols.linear_grid import (
    AUTHORS_TAUS,
    LinearGridResult,
    LinearGridSettings,
    linear_grid,
)
from semprobe.protocols.reports import PROTOCOLS
from semprobe.protocols.robustness import RobustnessSettings
from semprobe.protocols.strengths import DEFAULT_STRENGTHS, Strength, strengths_from
from semprobe.protocols.transfer import TransferSettings

__all__ = [
    "AUTHORS_TAUS",
    "DEFAULT_STRENGTHS",
    "PROTOCOLS",
    "KNNSettings",
    "LinearGridResult",
    "LinearGridSettings",
    "ProtocolRun",
    "RobustnessSettings",
    "Strength",
    "TransferSettings",
    "knn_accuracy",
    "knn_table",
    "linear_grid",
    "nearest_neighbours",
    "run_knn",
    "run_linear_grid",
    "run_robustness",
    "run_transfer",
    "strengths_from",
]
