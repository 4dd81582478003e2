"""A :class:`Study`: several checkpoints x taus x analyses, one run directory, one tidy table.

:func:`run_relevance` is ``semprobe relevance`` from Python. A study with ``[pretrain.<name>]``
sections trains the missing checkpoints first, with the :class:`Trainer` it is given: the
analysis library never imports the training stack itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import plotly.graph_objects as go

from semprobe.analysis import (
    Grouping,
    ModelResult,
    RelevanceSettings,
    analyse_with_reference,
    comparison_table,
    resolve_groupings,
    superclass_table,
)
from semprobe.analysis.bootstrap import write_lift_differences
from semprobe.atomic import write_json
from semprobe.checkpoint import LoadedModel, check_checkpoint_file, random_init_model
from semprobe.entropy import EntropyReport
from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions, features, load, open_split
from semprobe.plots import STATIC_FORMATS, write_figures
from semprobe.rundir import (
    building_run,
    link_or_copy,
    model_name,
    thumbnails,
    write_dataset_files,
    write_run_metadata,
)
from semprobe.studies.protocols import (
    PROTOCOLS,
    ProtocolOutputs,
    ProtocolSettings,
    check_protocols,
    prepare_protocols,
    protocol_parameters,
    protocol_tidy,
    run_model_protocols,
    write_protocol_tables,
)
from semprobe.studies.sweeps import DEFAULT_TAUS, ProbeSettings, entropy_for, tau_sweep
from semprobe.studies.tables import study_figures, tidy_table
from semprobe.validation import check_taus

ANALYSES = ("entropy", "tau_sweep", "relevance")
log = logging.getLogger("semprobe")


class Trainer(Protocol):
    """What a study needs to pretrain its missing checkpoints.

    :class:`semprobe.pretrain.study_trainer.StudyTrainer` is the implementation; a test or a
    user's own training code can pass any object with these three methods.
    """

    def check(self, config: Mapping[str, Any], dataset: str) -> None:
        """Raise :class:`SemprobeError` unless ``config`` is a valid set of options."""

    def check_trained_as_asked(self, path: Path, config: Mapping[str, Any], dataset: str) -> None:
        """Raise :class:`SemprobeError` if the checkpoint at ``path`` was trained otherwise."""

    def train(self, config: Mapping[str, Any], path: Path, dataset: str) -> Path:
        """Train a checkpoint into ``path`` and return it."""


@dataclass
class _Outputs:
    """What the per-model loop of a study collects."""

    sweeps: list[pd.DataFrame] = field(default_factory=list)
    entropies: dict[str, EntropyReport] = field(default_factory=dict)
    relevance: list[ModelResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    protocols: ProtocolOutputs = field(default_factory=ProtocolOutputs)


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
    protocols: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)


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
        Any of ``entropy``, ``tau_sweep``, ``relevance``, and the evaluation protocols ``knn``,
        ``linear_grid``, ``robustness``, ``transfer`` (:mod:`semprobe.studies.protocols`).
    options:
        Extraction options (cache, device, batch size); ``dataset`` above overrides theirs.
    probe:
        Probe settings of the tau sweep.
    relevance:
        Settings of the relevance analysis.
    pretrain:
        Model name -> pretraining options (see ``semprobe pretrain --help``), trained into the
        checkpoint's path before the analyses when it does not exist yet.
    trainer:
        What trains them (required when ``pretrain`` is not empty).
    protocols:
        Settings of the evaluation protocols.
    twin_taus:
        Temperatures of the random-init twins' tau sweep (when relevance and the tau sweep both
        run); ``None`` sweeps them at ``taus``. The twins' dense probe at the pretraining tau is
        what says whether training helped, so a study short of time can sweep them there alone.

    Examples
    --------
    >>> study = Study({"sem": "demo/checkpoints/byol-sem/final.ckpt"}, taus=[0.1, 1])
    >>> study.taus, study.analyses
    ([0.1, 1.0], ('entropy', 'tau_sweep', 'relevance'))
    """

    checkpoints: Mapping[str, str | Path]
    dataset: str = "synthetic"
    taus: Sequence[float] = DEFAULT_TAUS
    analyses: Sequence[str] = ANALYSES
    options: ExtractionOptions = field(default_factory=ExtractionOptions)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    relevance: RelevanceSettings = field(default_factory=RelevanceSettings)
    pretrain: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    trainer: Trainer | None = None
    protocols: ProtocolSettings = field(default_factory=ProtocolSettings)
    twin_taus: Sequence[float] | None = None

    def __post_init__(self) -> None:
        self.taus = check_taus(self.taus)
        if self.twin_taus is not None:
            self.twin_taus = check_taus(self.twin_taus)
        known = (*ANALYSES, *PROTOCOLS)
        unknown = [a for a in self.analyses if a not in known]
        if unknown or not self.analyses:
            raise SemprobeError(
                f"unknown analyses {unknown or self.analyses!r}; choose from {', '.join(known)}"
            )
        check_protocols(self.analyses, self.protocols)
        if not self.checkpoints:
            raise SemprobeError("a study needs at least one checkpoint")
        if self.pretrain and self.trainer is None:
            raise SemprobeError(
                "this study has pretrain sections but no trainer: pass "
                "trainer=semprobe.pretrain.study_trainer.StudyTrainer()"
            )
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

    def _train_missing(self) -> dict[str, Path]:
        paths = {name: Path(p) for name, p in self.checkpoints.items()}
        if not self.pretrain:
            return paths
        assert self.trainer is not None  # checked in __post_init__
        # Every section is checked before anything trains: a typo in the second model's options
        # must not cost the first model's training time.
        for name, config in self.pretrain.items():
            if name not in paths:
                raise SemprobeError(f"pretrain section {name!r} has no checkpoint entry")
            if paths[name].exists():
                self.trainer.check_trained_as_asked(paths[name], config, self.dataset)
            else:
                self.trainer.check(config, self.dataset)
        for name, config in self.pretrain.items():
            if not paths[name].exists():
                paths[name] = self.trainer.train(dict(config), paths[name], self.dataset)
        return paths

    def _groupings(self, class_names: list[str], own: dict[str, str] | None) -> list[Grouping]:
        """The superclass groupings, resolved before any training: a missing WordNet or a bad
        CSV must not be found only after the models have trained."""
        if "relevance" in self.analyses:
            return resolve_groupings(
                self.relevance.superclass_sources,
                class_names,
                own,
                self.dataset,
                self.relevance.synsets,
            )
        if own is None:
            return []
        # Entropy by superclass needs only the primary grouping, and does without one.
        with contextlib.suppress(SemprobeError):
            return resolve_groupings(
                self.relevance.superclass_sources[:1],
                class_names,
                own,
                self.dataset,
                self.relevance.synsets,
            )
        return []

    def _analyse(
        self,
        name: str,
        item: LoadedModel,
        checkpoint: Path,
        work: Path,
        groupings: list[Grouping],
        taken: set[str],
        outputs: _Outputs,
    ) -> None:
        """Every analysis of one model, written into ``work/name``."""
        folder = work / name
        folder.mkdir()
        train = features(item.model, self.options, "train")
        test = features(item.model, self.options, "test")
        if test.logits is not None:
            link_or_copy(test.directory / "logits.npy", folder / "logits.npy")
        write_json(
            folder / "model.json",
            {
                "model": name,
                "checkpoint": str(checkpoint),
                "spec": item.spec.to_dict(),
                "transform": test.transform,
            },
        )
        if "entropy" in self.analyses:
            if test.logits is None:
                outputs.notes.append(f"{name}: no SEM embedder, entropy analysis skipped")
            else:
                labels = groupings[0].labels if groupings else None
                report = entropy_for(test, self.taus, labels, self.options.progress)
                report.to_dir(folder / "entropy", csv=True)
                outputs.entropies[name] = report
        if "tau_sweep" in self.analyses:
            sweep = tau_sweep(train, test, self.taus, self.probe, name, self.options.device)
            sweep.to_csv(folder / "tau_sweep.csv", index=False)
            outputs.sweeps.append(sweep)
        if "relevance" in self.analyses:
            results = analyse_with_reference(
                name, item, self.options, self.relevance, work, groupings, taken
            )
            outputs.relevance += results
            if "tau_sweep" in self.analyses and len(results) > 1:
                self._twin_sweep(item, results[1].name, work, outputs)
        run_model_protocols(
            self.analyses, self.protocols, outputs.protocols, name, item, self.options, train, test
        )

    def _twin_sweep(self, item: LoadedModel, twin: str, work: Path, outputs: _Outputs) -> None:
        """The tau sweep of the random-init twin: whether training helped is read from the
        linear evaluation (the dense probe), not from the sparse probe that builds W_K."""
        model = random_init_model(item.spec, self.relevance.seed)
        train = features(model, self.options, "train")
        test = features(model, self.options, "test")
        taus = self.taus if self.twin_taus is None else self.twin_taus
        sweep = tau_sweep(train, test, taus, self.probe, twin, self.options.device)
        sweep.to_csv(work / twin / "tau_sweep.csv", index=False)
        outputs.sweeps.append(sweep)

    def _run(self, out: Path) -> StudyResult:
        # Cheap checks first: a mistyped checkpoint path must not surface as a failed download.
        for name, path in self.checkpoints.items():
            if name not in self.pretrain:
                check_checkpoint_file(path)
        test_split = open_split(self.options, "test")
        groupings = self._groupings(test_split.class_names, test_split.superclass_of)
        prepared = prepare_protocols(self.analyses, self.protocols, self.options)
        paths = self._train_missing()
        loaded = {name: load(path, self.options) for name, path in paths.items()}
        if list(self.analyses) == ["entropy"] and not any(m.spec.has_sem for m in loaded.values()):
            raise SemprobeError(
                "none of these checkpoints has a SEM embedder, so there are no simplices to "
                "measure; use `semprobe tau-sweep` for their backbone features"
            )
        outputs = _Outputs(protocols=prepared)
        with building_run(out) as work:
            superclass_of = (
                dict(zip(test_split.class_names, groupings[0].labels, strict=True))
                if groupings
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
                self._analyse(name, item, paths[name], work, groupings, taken, outputs)
            result = self._write_results(work, outputs, loaded, paths)
        result.out = out
        return result

    def _write_results(
        self,
        work: Path,
        outputs: _Outputs,
        loaded: Mapping[str, LoadedModel],
        paths: Mapping[str, Path],
    ) -> StudyResult:
        """The study's tables, figures and ``run.json`` (written last)."""
        rel = outputs.relevance
        sweep_all = (
            pd.concat(outputs.sweeps, ignore_index=True) if outputs.sweeps else pd.DataFrame()
        )
        relevance_table = comparison_table(rel) if rel else pd.DataFrame()
        by_superclasses = superclass_table(rel) if rel else pd.DataFrame()
        protocol_tables = write_protocol_tables(work, outputs.protocols)
        table = tidy_table(sweep_all, outputs.entropies, relevance_table)
        if protocol_tables:
            table = pd.concat([table, protocol_tidy(protocol_tables)], ignore_index=True)
        table.to_csv(work / "study.csv", index=False)
        figures = study_figures(sweep_all, outputs.entropies, rel, loaded)
        # HTML, PNG and SVG; where PNG and SVG cannot be made, one line says why.
        figures_note = write_figures(figures, work)
        if figures_note:
            log.warning("note: %s", figures_note)
        if len(relevance_table):
            relevance_table.to_csv(work / "comparison.csv", index=False)
            by_superclasses.to_csv(work / "relevance_by_superclasses.csv", index=False)
            write_lift_differences(work, {r.name: r.bootstrap for r in rel if r.bootstrap})
        write_run_metadata(
            work,
            "study",
            [r.name for r in rel] if rel else list(loaded),
            {
                "dataset": self.dataset,
                "taus": list(self.taus),
                "analyses": list(self.analyses),
                "checkpoints": {k: str(v) for k, v in paths.items()},
                "probe": dataclasses.asdict(self.probe),
                "relevance": dataclasses.asdict(self.relevance),
                "notes": outputs.notes,
                "static_figures": figures_note or ", ".join(STATIC_FORMATS),
                "protocols": protocol_parameters(self.analyses, self.protocols),
            },
        )
        return StudyResult(
            table,
            sweep_all,
            outputs.entropies,
            relevance_table,
            figures,
            None,
            rel,
            by_superclasses,
            protocol_tables,
        )


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
