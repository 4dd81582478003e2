"""Studies: the temperature analyses, the :class:`Study` of several models, and study files.

* :func:`entropy_for` -- per-simplex entropy statistics at several taus (the paper's histograms);
* :func:`tau_sweep` -- linear-probe accuracy of f_SEM(tau) for each tau, beside the backbone
  features f_base and the un-normalised embedder logits; on a dataset other than the
  pre-training one this is the transfer evaluation of the paper's Table 3;
* :class:`Study` -- several checkpoints x taus x analyses -> one tidy DataFrame, plotly figures,
  and a run directory the dashboard opens; :func:`load_study` reads one from TOML or YAML;
* :class:`SeedStudy` -- the same study at each of ``seeds = [...]``, with mean, std and per-seed
  values across them (:func:`load_seeded_study`).

Examples
--------
>>> from semprobe.studies import Study
>>> Study({"sem": "sem.ckpt", "base": "base.ckpt"}, analyses=["entropy"]).analyses
['entropy']
"""

from semprobe.studies.files import load_study
from semprobe.studies.seeds import SeedStudy, SeedStudyResult, load_seeded_study
from semprobe.studies.study import ANALYSES, Study, StudyResult, Trainer, run_relevance
from semprobe.studies.sweeps import (
    DEFAULT_TAUS,
    ProbeSettings,
    accuracy_table,
    entropy_for,
    tau_sweep,
)

__all__ = [
    "ANALYSES",
    "DEFAULT_TAUS",
    "ProbeSettings",
    "SeedStudy",
    "SeedStudyResult",
    "Study",
    "StudyResult",
    "Trainer",
    "accuracy_table",
    "entropy_for",
    "load_seeded_study",
    "load_study",
    "run_relevance",
    "tau_sweep",
]
