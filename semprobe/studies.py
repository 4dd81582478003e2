"""Entropy and temperature studies: ``semprobe entropy``, ``semprobe tau-sweep`` and :class:`Study`.

The paper has two temperatures: the one used in pre-training, and the one applied before the
downstream classifier, which controls expressivity. Both studies here read only cached logits,
so any number of taus costs one backbone pass per (model, dataset, split).

* :func:`entropy_for` -- per-simplex entropy statistics at several taus (the paper's histograms);
* :func:`tau_sweep` -- linear-probe accuracy of f_SEM(tau) for each tau, beside the backbone
  features f_base and the un-normalised embedder logits (the paper's f_base vs f_SEM table); on
  a dataset other than the pre-training one this is the transfer evaluation of its Table 3;
* :class:`Study` -- several checkpoints x taus x analyses -> one tidy DataFrame, plotly figures,
  and a run directory the dashboard opens; :func:`load_study` reads one from TOML or YAML.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import tomllib

from semprobe.analysis import (
    ModelResult,
    RelevanceSettings,
    analyse_with_reference,
    comparison_table,
    fit_probe,
    probe_inputs,
    resolve_groupings,
    superclass_table,
    thumbnails,
)
from semprobe.atomic import write_json
from semprobe.entropy import EntropyReport, entropy_report
from semprobe.errors import SemprobeError
from semprobe.features import FeatureSet
from semprobe.pipeline import ExtractionOptions, features, load, open_split
from semprobe.plots import (
    accuracy_vs_tau_figure,
    entropy_histogram_figure,
    ranked_entropy_figure,
    relevance_curve_figure,
    write_figure,
)
from semprobe.rundir import building_run, link_or_copy, write_dataset_files, write_run_metadata
from semprobe.validation import check_taus

DEFAULT_TAUS = (0.01, 0.1, 1.0, 10.0)
ANALYSES = ("entropy", "tau_sweep", "relevance")


@dataclass(frozen=True)
class ProbeSettings:
    """The tau sweep's probe: L2 by default (dense), as the paper's linear evaluation."""

    l1: float = 0.0
    l2: float = 1e-4
    epochs: int = 40
    seed: int = 0


def entropy_for(
    test: FeatureSet,
    taus: Sequence[float],
    superclass_labels: Sequence[str] | None = None,
    progress: bool = False,
) -> EntropyReport:
    """Entropy statistics of a SEM model's cached test logits at each tau."""
    logits = test.require_logits("the entropy analysis")
    return entropy_report(
        logits,
        test.num_simplices,
        test.vocab,
        check_taus(taus),
        labels=test.labels,
        class_names=test.class_names,
        superclass_of=list(superclass_labels) if superclass_labels is not None else None,
        progress=progress,
    )


def tau_sweep(
    train: FeatureSet,
    test: FeatureSet,
    taus: Sequence[float] = DEFAULT_TAUS,
    probe: ProbeSettings = ProbeSettings(),
    model: str = "model",
    device: str = "cpu",
) -> pd.DataFrame:
    """Probe accuracy for f_SEM(tau) at each tau, the backbone features and the raw logits.

    Returns
    -------
    pandas.DataFrame
        ``model, representation, tau, n_features, top1, top5`` (tau is NaN for the baselines).
        A model without SEM embedder gets the backbone row only.
    """
    representations: list[tuple[str, float]] = [("backbone", float("nan"))]
    if train.logits is not None:
        representations += [("logits", float("nan"))]
        representations += [("sem", tau) for tau in check_taus(taus)]
    settings = RelevanceSettings(l1=probe.l1, l2=probe.l2, epochs=probe.epochs, seed=probe.seed)
    rows = []
    for representation, tau in representations:
        x_train, x_test = probe_inputs(train, test, representation, tau)
        _, stats = fit_probe(x_train, train.labels, x_test, test.labels, settings, device)
        rows.append(
            {
                "model": model,
                "representation": representation,
                "tau": tau,
                "n_features": x_train.shape[1],
                "top1": stats["top1"],
                "top5": stats["top5"],
            }
        )
    return pd.DataFrame(rows)


def accuracy_table(sweep: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """A tau sweep as one row per model: ``backbone``, ``logits``, then ``sem tau=...`` columns.

    Representations a model lacks (a baseline has no logits or SEM) are NaN.
    """
    sem = sweep["representation"] == "sem"
    columns = sweep["representation"].where(~sem, "sem tau=" + sweep["tau"].map("{:g}".format))
    wide = sweep.assign(column=columns).pivot(index="model", columns="column", values=metric)
    taus = sorted(sweep.loc[sem, "tau"].unique())
    order = ["backbone", "logits", *(f"sem tau={tau:g}" for tau in taus)]
    wide = wide.reindex(index=sweep["model"].unique(), columns=[c for c in order if c in wide])
    return wide.rename_axis(index=None, columns=None)


def pretrain_checkpoint(config: dict[str, Any], path: Path, dataset: str) -> Path:
    """Train a checkpoint with ``pretrain`` (options as in ``semprobe pretrain``) into ``path``.

    Training writes into ``path``'s folder (logs, periodic checkpoints); the final checkpoint is
    renamed to ``path``.
    """
    import os

    from semprobe.pretrain import run

    final = run({"dataset": dataset, **config, "out": str(path.parent)})
    if final.resolve() != path.resolve():
        os.replace(final, path)
    return path


# Options that may differ between a checkpoint and its study section: they say how a run was
# carried out, or they only set the online monitors, on which the analysed encoder does not depend.
_IGNORED_OPTIONS = frozenset(
    {
        "classifier_lr",
        "online_taus",
        "out",
        "resume",
        "progress",
        "workers",
        "threads",
        "log_every",
        "checkpoint_every",
        "keep_all_checkpoints",
        "data_root",
        "download",
        "dataset",  # its path moves with the repository; the data is checked by the cache key
        "accelerator",
        "devices",
        "strategy",
    }
)


def check_trained_as_asked(path: Path, config: Mapping[str, Any], dataset: str) -> None:
    """Refuse a study's existing checkpoint that was pretrained with other options.

    A study trains a model only when its checkpoint is missing; without this check, editing a
    ``[pretrain.<name>]`` section would silently analyse the old model. Checkpoints not written
    by ``semprobe pretrain`` (the authors', solo-learn's) carry no options and are accepted.
    """
    from semprobe.checkpoint import read_checkpoint
    from semprobe.pretrain.config import PretrainConfig

    raw = read_checkpoint(path)
    meta = raw.get("semprobe_meta") if isinstance(raw, Mapping) else None
    saved = meta.get("pretrain_config") if isinstance(meta, Mapping) else None
    if not isinstance(saved, Mapping):
        return
    wanted = PretrainConfig.from_dict({"dataset": dataset, **config}).resolved().to_dict()
    differences = [
        f"{key} = {saved.get(key)!r} (the study asks {value!r})"
        for key, value in wanted.items()
        if key not in _IGNORED_OPTIONS and saved.get(key) != value
    ]
    if differences:
        raise SemprobeError(
            f"checkpoint {path} was pretrained with other options: {'; '.join(differences)}. "
            "Delete it to train it again, or point [checkpoints] at another file"
        )


@dataclass
class StudyResult:
    """Everything a study produced.

    Attributes
    ----------
    table: tidy ``model, analysis, representation, tau, metric, value`` rows of every number.
    sweep: the tau-sweep rows of every model.
    entropy: model name -> :class:`EntropyReport`.
    relevance: the relevance comparison table (empty if not run).
    figures: name -> plotly figure.
    out: the run directory, if one was written.
    relevance_models: per-model relevance results (summaries, curves, feature concepts).
    relevance_by_superclasses: relevance of each model under each superclass source.
    """

    table: pd.DataFrame
    sweep: pd.DataFrame
    entropy: dict[str, EntropyReport]
    relevance: pd.DataFrame
    figures: dict[str, go.Figure]
    out: Path | None = None
    relevance_models: list[ModelResult] = field(default_factory=list)
    relevance_by_superclasses: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class Study:
    """Several checkpoints x taus x analyses, run in one go.

    Parameters
    ----------
    checkpoints:
        Model name -> checkpoint path.
    dataset:
        Any ``--dataset`` name; the probe trains on its train split and tests on its test split.
    taus:
        Temperatures for the entropy and tau-sweep analyses.
    analyses:
        Any of ``entropy``, ``tau_sweep``, ``relevance``.
    options:
        Extraction options (cache, device, batch size); ``dataset`` above overrides theirs.
    probe:
        Probe settings of the tau sweep.
    relevance:
        Settings of the relevance analysis.
    pretrain:
        Model name -> pretraining options (see ``semprobe pretrain --help``), trained into
        ``<out>-checkpoints/<name>`` before the analyses when the checkpoint does not exist yet.
    """

    checkpoints: Mapping[str, str | Path]
    dataset: str = "synthetic"
    taus: Sequence[float] = DEFAULT_TAUS
    analyses: Sequence[str] = ANALYSES
    options: ExtractionOptions = field(default_factory=ExtractionOptions)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    relevance: RelevanceSettings = field(default_factory=RelevanceSettings)
    pretrain: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.taus = check_taus(self.taus)
        unknown = [a for a in self.analyses if a not in ANALYSES]
        if unknown or not self.analyses:
            raise SemprobeError(
                f"unknown analyses {unknown or self.analyses!r}; choose from {', '.join(ANALYSES)}"
            )
        if not self.checkpoints:
            raise SemprobeError("a study needs at least one checkpoint")
        self.options = dataclasses.replace(self.options, dataset=self.dataset)

    def run(self, out: str | Path | None = None) -> StudyResult:
        """Run every analysis on every checkpoint; write a run directory when ``out`` is given."""
        if out is None:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                result = self._run(Path(tmp) / "study")
            result.out = None
            return result
        return self._run(Path(out))

    def _train_missing(self, out: Path) -> dict[str, Path]:
        paths = {name: Path(p) for name, p in self.checkpoints.items()}
        from semprobe.pretrain.config import PretrainConfig

        # Every section is checked before anything trains: a typo in the second model's options
        # must not cost the first model's training time.
        for name, config in self.pretrain.items():
            if name not in paths:
                raise SemprobeError(f"pretrain section {name!r} has no checkpoint entry")
            if paths[name].exists():
                check_trained_as_asked(paths[name], config, self.dataset)
            else:
                PretrainConfig.from_dict({"dataset": self.dataset, **config}).resolved()
        for name, config in self.pretrain.items():
            if not paths[name].exists():
                paths[name] = pretrain_checkpoint(dict(config), paths[name], self.dataset)
        return paths

    def _run(self, out: Path) -> StudyResult:
        # Superclasses are resolved before any training: a missing WordNet or a bad CSV must
        # not be found only after the models have trained.
        test_split = open_split(self.options, "test")
        groupings = []
        if "relevance" in self.analyses:
            groupings = resolve_groupings(
                self.relevance.superclass_sources, test_split.class_names, test_split.superclass_of
            )
        elif test_split.superclass_of is not None:
            # Entropy by superclass needs only the primary grouping, and does without one.
            with contextlib.suppress(SemprobeError):
                groupings = resolve_groupings(
                    self.relevance.superclass_sources[:1],
                    test_split.class_names,
                    test_split.superclass_of,
                )
        superclass_labels = groupings[0].labels if groupings else None
        paths = self._train_missing(out)
        loaded = {name: load(path, self.options) for name, path in paths.items()}
        if list(self.analyses) == ["entropy"] and not any(m.spec.has_sem for m in loaded.values()):
            raise SemprobeError(
                "none of these checkpoints has a SEM embedder, so there are no simplices to "
                "measure; use `semprobe tau-sweep` for their backbone features"
            )
        sweeps, entropies, rel_results, notes = [], {}, [], []
        with building_run(out) as work:
            superclass_of = (
                dict(zip(test_split.class_names, superclass_labels, strict=True))
                if superclass_labels
                else None
            )
            write_dataset_files(
                work,
                test_split.class_names,
                superclass_of,
                test_split.labels,
                thumbnails(test_split),
            )
            taken = set(loaded)
            for name, item in loaded.items():
                model = item.model
                folder = work / name
                folder.mkdir()
                train = features(model, self.options, "train")
                test = features(model, self.options, "test")
                if test.logits is not None:
                    link_or_copy(test.directory / "logits.npy", folder / "logits.npy")
                write_json(
                    folder / "model.json",
                    {"model": name, "checkpoint": str(paths[name]), "spec": item.spec.to_dict()},
                )
                if "entropy" in self.analyses:
                    if test.logits is None:
                        notes.append(f"{name}: no SEM embedder, entropy analysis skipped")
                    else:
                        entropies[name] = entropy_for(
                            test, self.taus, superclass_labels, self.options.progress
                        )
                        entropies[name].to_dir(folder / "entropy", csv=True)
                if "tau_sweep" in self.analyses:
                    sweep = tau_sweep(train, test, self.taus, self.probe, name, self.options.device)
                    sweep.to_csv(folder / "tau_sweep.csv", index=False)
                    sweeps.append(sweep)
                if "relevance" in self.analyses:
                    rel_results += analyse_with_reference(
                        name, item, self.options, self.relevance, work, groupings, taken
                    )
            sweep_all = pd.concat(sweeps, ignore_index=True) if sweeps else pd.DataFrame()
            relevance_table = comparison_table(rel_results) if rel_results else pd.DataFrame()
            by_superclasses = superclass_table(rel_results) if rel_results else pd.DataFrame()
            table = _tidy(sweep_all, entropies, relevance_table)
            table.to_csv(work / "study.csv", index=False)
            figures = _figures(sweep_all, entropies, rel_results, loaded)
            for fig_name, fig in figures.items():
                write_figure(fig, work / f"{fig_name}.html", png=False)
            model_names = [r.name for r in rel_results] if rel_results else list(loaded)
            if len(relevance_table):
                relevance_table.to_csv(work / "comparison.csv", index=False)
                by_superclasses.to_csv(work / "relevance_by_superclasses.csv", index=False)
            write_run_metadata(
                work,
                "study",
                model_names,
                {
                    "dataset": self.dataset,
                    "taus": list(self.taus),
                    "analyses": list(self.analyses),
                    "checkpoints": {k: str(v) for k, v in paths.items()},
                    "probe": dataclasses.asdict(self.probe),
                    "relevance": dataclasses.asdict(self.relevance),
                    "notes": notes,
                },
            )
        return StudyResult(
            table,
            sweep_all,
            entropies,
            relevance_table,
            figures,
            out,
            rel_results,
            by_superclasses,
        )


def _tidy(
    sweep: pd.DataFrame, entropies: Mapping[str, EntropyReport], relevance: pd.DataFrame
) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for rec in sweep.to_dict("records"):
        for metric in ("top1", "top5"):
            rows.append(
                {
                    "model": rec["model"],
                    "analysis": "tau_sweep",
                    "representation": rec["representation"],
                    "tau": rec["tau"],
                    "metric": metric,
                    "value": rec[metric],
                }
            )
    for name, report in entropies.items():
        for rec in report.summary.to_dict("records"):
            for metric in (
                "mean",
                "std",
                "frac_one_hot",
                "frac_two_hot",
                "frac_uniform",
                "eff_vertices",
            ):
                rows.append(
                    {
                        "model": name,
                        "analysis": "entropy",
                        "representation": "sem",
                        "tau": rec["tau"],
                        "metric": f"entropy_{metric}",
                        "value": rec[metric],
                    }
                )
    for rec in relevance.to_dict("records"):
        for metric in ("top1", "relevance_mean", "relevance_sum", "z", "p", "null_mean"):
            rows.append(
                {
                    "model": rec["model"],
                    "analysis": "relevance",
                    "representation": rec["features"],
                    "tau": np.nan,
                    "metric": metric,
                    "value": rec[metric],
                }
            )
    return pd.DataFrame(
        rows, columns=["model", "analysis", "representation", "tau", "metric", "value"]
    )


def _figures(sweep, entropies, rel_results, loaded) -> dict[str, go.Figure]:
    figures: dict[str, go.Figure] = {}
    if len(sweep):
        figures["accuracy_vs_tau"] = accuracy_vs_tau_figure(sweep)
    for name, report in entropies.items():
        figures[f"entropy_histogram_{name}"] = entropy_histogram_figure(
            report.histogram, loaded[name].spec.vocab
        )
        figures[f"entropy_ranked_{name}"] = ranked_entropy_figure(report.per_simplex)
    if rel_results:
        sources = list(rel_results[0].curves)
        named = sources[0] if len(sources) > 1 else None
        figures["relevance_curve"] = relevance_curve_figure(
            {r.name: r.curve for r in rel_results}, named
        )
        for source in sources[1:]:
            slug = re.sub(r"[^A-Za-z0-9]+", "_", source).strip("_")
            figures[f"relevance_curve_{slug}"] = relevance_curve_figure(
                {r.name: r.curves[source] for r in rel_results}, source
            )
    return figures


# ----------------------------------------------------------------------------------------------
# Study files
# ----------------------------------------------------------------------------------------------

_TOP_KEYS = {
    "dataset",
    "taus",
    "analyses",
    "out",
    "checkpoints",
    "probe",
    "relevance",
    "extraction",
    "pretrain",
}
_EXTRACTION_KEYS = {
    "cache_dir",
    "dtype",
    "batch_size",
    "workers",
    "device",
    "data_root",
    "download",
    "trust_checkpoint",
    "progress",
}


def _check_keys(section: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SemprobeError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in "
            f"{section}; allowed: {', '.join(sorted(allowed))}"
        )


def load_study(path: str | Path) -> tuple[Study, Path]:
    """Read a study file (TOML or YAML); relative paths are relative to the file.

    Returns
    -------
    (Study, Path)
        The study and its output directory (``out``, default ``runs/<file stem>``).
    """
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise SemprobeError(f"cannot read study file {file}: {exc.strerror or exc}") from None
    try:
        if file.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # tomllib / yaml syntax errors
        raise SemprobeError(f"study file {file} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise SemprobeError(f"study file {file} must hold a table of keys")
    _check_keys(f"study file {file}", data, _TOP_KEYS)
    base = file.parent

    def resolve(p: str) -> Path:
        return (base / p) if not Path(p).is_absolute() else Path(p)

    checkpoints = data.get("checkpoints") or {}
    if not isinstance(checkpoints, dict):
        raise SemprobeError(f"{file}: [checkpoints] must map model names to files")
    extraction = dict(data.get("extraction") or {})
    _check_keys(f"{file} [extraction]", extraction, _EXTRACTION_KEYS)
    if "cache_dir" in extraction:
        extraction["cache_dir"] = resolve(str(extraction["cache_dir"]))
    probe = dict(data.get("probe") or {})
    _check_keys(f"{file} [probe]", probe, {f.name for f in dataclasses.fields(ProbeSettings)})
    relevance = dict(data.get("relevance") or {})
    _check_keys(
        f"{file} [relevance]", relevance, {f.name for f in dataclasses.fields(RelevanceSettings)}
    )
    if isinstance(relevance.get("superclasses"), list):
        relevance["superclasses"] = ",".join(map(str, relevance["superclasses"]))
    pretrain = data.get("pretrain") or {}
    if not isinstance(pretrain, dict) or not all(isinstance(v, dict) for v in pretrain.values()):
        raise SemprobeError(f"{file}: [pretrain.<name>] sections must be tables of options")
    dataset = str(data.get("dataset", "synthetic"))
    if dataset.startswith("imagefolder:"):
        dataset = f"imagefolder:{resolve(dataset.partition(':')[2])}"
    study = Study(
        checkpoints={k: resolve(str(v)) for k, v in checkpoints.items()},
        dataset=dataset,
        taus=data.get("taus", list(DEFAULT_TAUS)),
        analyses=data.get("analyses", list(ANALYSES)),
        options=ExtractionOptions(**extraction),
        probe=ProbeSettings(**probe),
        relevance=RelevanceSettings(**relevance),
        pretrain=pretrain,
    )
    out = resolve(str(data["out"])) if "out" in data else Path("runs") / file.stem
    return study, out


def run_relevance(
    checkpoints: Sequence[str | Path],
    options: ExtractionOptions,
    settings: RelevanceSettings,
    out: str | Path,
) -> StudyResult:
    """``semprobe relevance`` from Python: the relevance analysis of several checkpoints.

    Models are named after their files; the run directory ``out`` holds one folder per model (and
    per random-init reference when ``settings.reference`` is set) and ``comparison.csv``.
    """
    from semprobe.analysis import model_name

    taken: set[str] = set()
    named = {model_name(c, taken): Path(c) for c in checkpoints}
    study = Study(
        named,
        dataset=options.dataset,
        taus=[1.0],
        analyses=["relevance"],
        options=options,
        relevance=settings,
    )
    return study.run(out)
