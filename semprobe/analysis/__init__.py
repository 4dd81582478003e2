"""The relevance analysis of one or more models, end to end: ``semprobe relevance``.

For each model: cached features (train and test) -> the probe's representation (SEM output at
``tau``, or backbone features for a model without SEM; :mod:`.inputs`) -> sparse probe on train,
accuracy on test -> W_K, relevance with its permutation null, the relevance-vs-K curve, feature
concepts -> files in the run directory (:mod:`.model`). With ``reference="random-init"`` the
same architecture at a seeded random initialisation goes through the same procedure, and the
trained model's lift over it is reported beside the null model. With ``bootstrap=N``,
:mod:`.bootstrap` adds percentile intervals (relevance, K curve, top-1, lifts, differences of
lifts). Superclass groupings come from :mod:`.groupings`, settings from :mod:`.settings`, the
printed tables from :mod:`.tables`.

Examples
--------
>>> from semprobe.analysis import RelevanceSettings
>>> RelevanceSettings(superclasses="coarse,wordnet:6").superclass_sources
['coarse', 'wordnet:6']
"""

from semprobe.analysis.bootstrap import Bootstrap, bootstrap_relevance, lift_differences
from semprobe.analysis.groupings import Grouping, resolve_groupings, resolve_superclasses
from semprobe.analysis.inputs import fit_probe, probe_inputs
from semprobe.analysis.model import ModelResult, analyse_model, analyse_with_reference
from semprobe.analysis.settings import REPRESENTATIONS, RelevanceSettings
from semprobe.analysis.tables import comparison_table, superclass_table

__all__ = [
    "REPRESENTATIONS",
    "Bootstrap",
    "Grouping",
    "ModelResult",
    "RelevanceSettings",
    "analyse_model",
    "analyse_with_reference",
    "bootstrap_relevance",
    "comparison_table",
    "fit_probe",
    "lift_differences",
    "probe_inputs",
    "resolve_groupings",
    "resolve_superclasses",
    "superclass_table",
]
