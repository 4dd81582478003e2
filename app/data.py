"""Loading run directories for the dashboard: validated, cached, and never outside a run.

Every file is reached through :class:`semprobe.rundir.Run`, which resolves paths (symbolic links
included) and refuses anything that leaves the run directory. Large arrays (logits, thumbnails)
stay memory-mapped and are cached as resources (shared, never copied); small tables and derived
numbers are cached as data. Cache keys hold the run's *stamp* (inode and modification time of
its ``run.json``), so a run that is rebuilt in place is read afresh.

Problems with a run directory surface as :class:`semprobe.errors.SemprobeError` with a message
that names the file; the dashboard shows them with ``st.error``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
import torch

from semprobe import interventions
from semprobe.app import compute
from semprobe.entropy import EntropyReport, entropy_report
from semprobe.errors import SemprobeError
from semprobe.graph import FeatureCategoryGraph, sem_feature_name, top_k_graph, two_neighbours
from semprobe.interventions import LinearProbe
from semprobe.relevance import RelevanceResult, relevance
from semprobe.rundir import RUN_FILE, Run
from semprobe.simplex_major import run_simplex_major, simplex_block
from semprobe.validation import check_class_indices, check_int, check_tau

#: Environment variable with run directories to open (separated by ``os.pathsep``).
RUNS_ENV = "SEMPROBE_RUNS"

DASHBOARD_SCRIPT = Path(__file__).with_name("dashboard.py")

#: The tables of an ``EntropyReport``, as written by :meth:`EntropyReport.to_dir`.
ENTROPY_TABLES = tuple(f.name for f in dataclasses.fields(EntropyReport) if f.name != "meta")

# Worker threads of the entropy analysis, fixed at import: torch's own setting is process-wide
# and briefly 1 while another session computes a simplex (see compute.single_thread).
_ENTROPY_THREADS = torch.get_num_threads()


def requested_runs(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Run directories to open: ``streamlit run app/dashboard.py -- RUN...`` and ``$SEMPROBE_RUNS``.

    The command-line arguments are used only when ``argv[0]`` is the dashboard script, i.e. under
    ``streamlit run``; in-process test runners have their own ``sys.argv``.
    """
    import sys

    argv = list(sys.argv if argv is None else argv)
    environ = os.environ if environ is None else environ
    paths: list[str] = []
    if argv and _same_file(argv[0], DASHBOARD_SCRIPT):
        paths.extend(a for a in argv[1:] if a)
    paths.extend(p for p in environ.get(RUNS_ENV, "").split(os.pathsep) if p.strip())
    unique: list[str] = []
    for path in paths:
        if path not in unique:
            unique.append(path)
    return unique


def _same_file(a: str | os.PathLike[str], b: Path) -> bool:
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False


def run_stamp(path: str | os.PathLike[str]) -> str:
    """Identity of the current contents of a run: changes when the run is rebuilt."""
    try:
        info = (Path(path) / RUN_FILE).stat()
    except OSError:
        return "missing"
    return f"{info.st_ino}-{info.st_mtime_ns}"


@st.cache_resource(show_spinner=False, max_entries=64)
def _open_run(path: str, stamp: str) -> Run:
    return Run(path)


def open_run(path: str) -> tuple[Run, str]:
    """Open (cached) the run at ``path``; returns it with its stamp.

    Raises
    ------
    SemprobeError
        If the directory is missing, partial or malformed.
    """
    resolved = str(Path(path).expanduser().resolve())
    stamp = run_stamp(resolved)
    return _open_run(resolved, stamp), stamp


@dataclass(frozen=True)
class ModelData:
    """One model of an opened run, with what every view needs to know about it."""

    run_path: str
    stamp: str
    run_label: str
    name: str
    spec: dict[str, Any]
    summary: dict[str, Any] | None

    @property
    def key(self) -> str:
        """``run/model``, unique among the opened runs."""
        return f"{self.run_label}/{self.name}"

    @property
    def num_simplices(self) -> int:
        return int(self.spec.get("num_simplices") or 0)

    @property
    def vocab(self) -> int:
        return int(self.spec.get("vocab") or 0)

    @property
    def tau(self) -> float:
        return float(self.spec.get("tau") or 1.0)

    @property
    def has_sem(self) -> bool:
        return self.num_simplices > 0 and self.vocab > 0

    @property
    def kind(self) -> str:
        return "SEM" if self.has_sem else "baseline"

    @property
    def representation(self) -> str | None:
        return None if self.summary is None else self.summary.get("representation")

    @property
    def sem_features(self) -> bool:
        """Whether the probe's features are the L*V SEM coordinates (simplex-major)."""
        return self.has_sem and self.representation in ("sem", "logits")

    def setting(self, name: str, default: Any = None) -> Any:
        if self.summary is None:
            return default
        return (self.summary.get("settings") or {}).get(name, default)


def _check_spec(spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise SemprobeError(f"{where} has no model spec")
    try:
        for key in ("num_simplices", "vocab"):
            check_int(key, spec.get(key, 0), minimum=0)
        check_tau(spec.get("tau", 1.0))
    except SemprobeError as exc:
        raise SemprobeError(f"{where}: {exc}") from None
    return spec


@st.cache_data(show_spinner=False, max_entries=256)
def _model(run_path: str, stamp: str, name: str) -> ModelData:
    run = _open_run(run_path, stamp)
    model = run.model(name)
    spec = _check_spec(model.info.get("spec"), f"{name}/model.json")
    summary = model.relevance_summary()
    return ModelData(run_path, stamp, run.name, name, spec, summary)


def model_data(run_path: str, stamp: str, run_label: str, name: str) -> ModelData:
    """Read ``<model>/model.json`` and its relevance summary (refusing paths outside the run).

    Raises
    ------
    SemprobeError
        If a file is missing or malformed, or the model's name leads outside the run.
    """
    return dataclasses.replace(_model(run_path, stamp, name), run_label=run_label)


@st.cache_resource(show_spinner=False, max_entries=64)
def labels(run_path: str, stamp: str) -> np.ndarray:
    """Test-split labels, checked against the class names; read-only."""
    run = _open_run(run_path, stamp)
    array = run.labels()
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise SemprobeError(f"{run.root}/labels.npy must be a 1-D integer array")
    try:
        checked, _ = check_class_indices(array, len(array), run.class_names)
    except SemprobeError as exc:
        raise SemprobeError(f"{run.root}/labels.npy does not match classes.json: {exc}") from None
    out = np.array(checked, dtype=np.int64)
    out.setflags(write=False)
    return out


@st.cache_resource(show_spinner=False, max_entries=64)
def thumbnails(run_path: str, stamp: str) -> np.ndarray:
    """Test-split thumbnails ``(N, H, W, 3)`` uint8, memory-mapped."""
    run = _open_run(run_path, stamp)
    array = run.thumbnails()
    n = len(labels(run_path, stamp))
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8 or len(array) != n:
        raise SemprobeError(
            f"{run.root}/thumbnails.npy must be uint8 (N={n}, H, W, 3), got {array.dtype} "
            f"{array.shape}"
        )
    return array


@st.cache_resource(show_spinner=False, max_entries=64)
def _thumbnail_store(run_path: str, stamp: str) -> dict[int, str]:
    return {}


def thumbnail_uris(run_path: str, stamp: str, indices: Sequence[int]) -> list[str]:
    """Data URIs of test thumbnails, each encoded once per run."""
    from semprobe.app.figures import image_data_uri

    store = _thumbnail_store(run_path, stamp)
    images = thumbnails(run_path, stamp)
    out = []
    for i in indices:
        uri = store.get(int(i))
        if uri is None:
            uri = store[int(i)] = image_data_uri(images[int(i)])
        out.append(uri)
    return out


@st.cache_resource(show_spinner=False, max_entries=64)
def logits(run_path: str, stamp: str, name: str) -> np.ndarray:
    """Test-split SEM logits ``(N, L*V)``, memory-mapped.

    Raises
    ------
    SemprobeError
        If the model has no logits or their shape does not match the spec and labels.
    """
    run = _open_run(run_path, stamp)
    model = run.model(name)
    array = model.logits()
    if array is None:
        raise SemprobeError(f"{name} has no logits.npy (only SEM models have)")
    spec = _check_spec(model.info.get("spec"), f"{name}/model.json")
    width = int(spec["num_simplices"]) * int(spec["vocab"])
    n = len(labels(run_path, stamp))
    if array.ndim != 2 or array.shape != (n, width) or array.dtype.kind != "f":
        raise SemprobeError(
            f"{run.root}/{name}/logits.npy must be float (N={n}, L*V={width}), got "
            f"{array.dtype} {array.shape}"
        )
    return array


@dataclass(frozen=True)
class Probe:
    """The probe of a model: weights ``coef`` (classes x features), read-only float64.

    ``input_mean`` and ``input_std`` (features,) are the standardisation of its inputs, None
    for raw inputs or a run made before probe.npz kept them.
    """

    coef: np.ndarray
    intercept: np.ndarray
    input_mean: np.ndarray | None = None
    input_std: np.ndarray | None = None


@st.cache_resource(show_spinner=False, max_entries=64)
def probe(run_path: str, stamp: str, name: str) -> Probe:
    """``<model>/relevance/probe.npz``, checked against the class list."""
    run = _open_run(run_path, stamp)
    path = run.path_of(f"{name}/relevance/probe.npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            coef = np.array(npz["coef"], dtype=np.float64)
            intercept = np.array(npz["intercept"], dtype=np.float64)
            scaling = [
                np.array(npz[key], dtype=np.float64) if key in npz else None
                for key in ("input_mean", "input_std")
            ]
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise SemprobeError(f"cannot read {path}: {exc}") from None
    if coef.ndim != 2 or coef.shape[0] != len(run.class_names) or not np.isfinite(coef).all():
        raise SemprobeError(
            f"{path}: coef must be finite (classes={len(run.class_names)}, features), got "
            f"{coef.shape}"
        )
    for array in (coef, intercept, *(a for a in scaling if a is not None)):
        array.setflags(write=False)
    return Probe(coef, intercept, *scaling)


def linear_probe(model: ModelData) -> LinearProbe:
    """The model's probe as :mod:`semprobe.interventions` applies it to edited SEM outputs.

    Raises
    ------
    SemprobeError
        If the probe does not read the SEM output, a class is missing from its intercept, or
        the probe was fitted on standardised inputs whose scaling the run does not hold.
    """
    if not model.sem_features:
        raise SemprobeError(f"{model.key}: the probe reads the backbone, not the SEM output")
    p = probe(model.run_path, model.stamp, model.name)
    if p.intercept.shape != (p.coef.shape[0],):
        raise SemprobeError(
            f"{model.key}: the probe has {len(p.intercept)} intercepts for {p.coef.shape[0]} "
            "classes (a class had no training image)"
        )
    standardized = bool(model.setting("standardize", True))
    if standardized and (p.input_mean is None or p.input_std is None):
        raise SemprobeError(
            f"{model.key}: probe.npz lacks the input scaling (a run made before semprobe kept "
            "it); run the relevance analysis again to intervene"
        )
    tau = float(model.setting("tau", None) or model.tau)
    if standardized:
        return LinearProbe(p.coef, p.intercept, tau, p.input_mean, p.input_std)
    return LinearProbe(p.coef, p.intercept, tau)


@st.cache_data(show_spinner=False, max_entries=512)
def table(run_path: str, stamp: str, name: str, relative: str) -> pd.DataFrame | None:
    """A CSV table of a model (``relevance/curve.csv`` ...), or None if the run has none."""
    run = _open_run(run_path, stamp)
    return run.model(name).table(relative)


@st.cache_data(show_spinner=False, max_entries=128)
def run_table(run_path: str, stamp: str, relative: str) -> pd.DataFrame | None:
    """A CSV table of the run itself (``lift_differences.csv`` ...), or None if it has none."""
    return _open_run(run_path, stamp).table(relative)


def superclasses(run: Run) -> list[str]:
    """Superclass of every class (the class itself where the run gives none)."""
    mapping = run.superclass_of or {}
    return [str(mapping.get(name, name)) for name in run.class_names]


def feature_names(model: ModelData, n_features: int) -> list[str]:
    """``s{simplex}v{vertex}`` for SEM features, ``f{index}`` otherwise."""
    if model.sem_features and n_features == model.num_simplices * model.vocab:
        return [sem_feature_name(j, model.vocab) for j in range(n_features)]
    return [f"f{j}" for j in range(n_features)]


@st.cache_resource(show_spinner=False, max_entries=64)
def simplex_copy(run_path: str, stamp: str, name: str) -> np.ndarray | None:
    """The model's ``(L, N, V)`` copy of its logits (:mod:`semprobe.simplex_major`), or None.

    None for a run without one (``--no-simplex-copy``, or made before semprobe kept it) and for
    a copy that does not match the logits: the views then read the logits' columns.
    """
    model = _model(run_path, stamp, name)
    return run_simplex_major(
        _open_run(run_path, stamp).model(name),
        logits(run_path, stamp, name),  # checked against the spec
        model.num_simplices,
        model.vocab,
    )


@st.cache_data(show_spinner=False, max_entries=64)
def simplex_logits(run_path: str, stamp: str, name: str, simplex: int) -> np.ndarray:
    """The ``(N, V)`` float32 test logits of one simplex, from the simplex-major copy if kept."""
    model = _model(run_path, stamp, name)
    return simplex_block(
        logits(run_path, stamp, name), simplex, model.vocab, simplex_copy(run_path, stamp, name)
    )


@st.cache_data(show_spinner=False, max_entries=64)
def simplex_probabilities(
    run_path: str, stamp: str, name: str, simplex: int, tau: float
) -> np.ndarray:
    """The ``(N, V)`` SEM output of one simplex over the test images at ``tau``."""
    return compute.simplex_probabilities(simplex_logits(run_path, stamp, name, simplex), tau)


@st.cache_data(show_spinner=False, max_entries=64)
def vertex_profiles(run_path: str, stamp: str, name: str, simplex: int, tau: float) -> np.ndarray:
    """:func:`semprobe.interventions.vertex_profiles` of one simplex over the test split."""
    z = simplex_logits(run_path, stamp, name, simplex)
    return interventions.vertex_profiles(z, 1, z.shape[1], 0, tau)  # z is that one simplex


@st.cache_data(show_spinner=False, max_entries=256)
def simplex_view(
    run_path: str, stamp: str, name: str, simplex: int, tau: float, top: int = 8
) -> compute.SimplexView:
    """The simplex browser's numbers for one simplex at one tau."""
    run = _open_run(run_path, stamp)
    return compute.simplex_view(
        simplex_logits(run_path, stamp, name, simplex),
        labels(run_path, stamp),
        len(run.class_names),
        simplex,
        tau,
        top=top,
    )


@st.cache_data(show_spinner="Computing the entropy of every simplex...", max_entries=64)
def entropy_at(run_path: str, stamp: str, name: str, taus: tuple[float, ...]) -> EntropyReport:
    """:func:`semprobe.entropy.entropy_report` of the model's test logits at ``taus``."""
    model = _model(run_path, stamp, name)
    run = _open_run(run_path, stamp)
    return entropy_report(
        logits(run_path, stamp, name),
        model.num_simplices,
        model.vocab,
        list(taus),
        labels=labels(run_path, stamp),
        class_names=run.class_names,
        superclass_of=superclasses(run),
        num_threads=_ENTROPY_THREADS,
    )


@st.cache_data(show_spinner=False, max_entries=64)
def simplex_entropy_means(run_path: str, stamp: str, name: str, tau: float) -> np.ndarray:
    """Mean entropy of every simplex at ``tau``."""
    frame = entropy_at(run_path, stamp, name, (tau,)).per_simplex
    return frame.sort_values("simplex")["mean"].to_numpy()


@st.cache_data(show_spinner=False, max_entries=64)
def saved_entropy_report(run_path: str, stamp: str, name: str) -> EntropyReport | None:
    """The model's precomputed ``EntropyReport`` (``<model>/entropy/``), or None."""
    run = _open_run(run_path, stamp)
    folder = run.path_of(f"{name}/entropy", must_exist=False)
    if not folder.is_dir():
        return None
    # Every file the reader opens must itself stay inside the run (no link out of it).
    for table_name in ENTROPY_TABLES:
        run.path_of(f"{name}/entropy/{table_name}.parquet")
    run.path_of(f"{name}/entropy/meta.json")
    return EntropyReport.from_dir(folder)


@st.cache_resource(show_spinner=False, max_entries=256)
def graph(run_path: str, stamp: str, name: str, k: int, rule: str) -> FeatureCategoryGraph:
    """W_K at ``k`` from the model's probe (immutable, shared)."""
    return top_k_graph(
        probe(run_path, stamp, name).coef, k, rule="feature" if rule == "feature" else "category"
    )


@st.cache_resource(show_spinner=False, max_entries=256)
def relevance_at_k(run_path: str, stamp: str, name: str, k: int, rule: str) -> RelevanceResult:
    """Superclass relevance of W_K at ``k`` (no null model: that is in curve.csv).

    Its ``mean`` is NaN when every category is isolated; immutable, shared.
    """
    run = _open_run(run_path, stamp)
    multiplicity = bool(_model(run_path, stamp, name).setting("multiplicity", False))
    counts = two_neighbours(graph(run_path, stamp, name, k, rule), multiplicity=multiplicity)
    return relevance(counts, superclasses(run), multiplicity=multiplicity)


@st.cache_data(show_spinner=False, max_entries=64)
def simplex_scores(run_path: str, stamp: str, name: str) -> pd.DataFrame:
    """Per simplex: vertices kept in W_K, coherent vertices and probe weight mass."""
    model = _model(run_path, stamp, name)
    scores = compute.relevance_contribution(
        table(run_path, stamp, name, "relevance/simplex_concepts.csv"), model.num_simplices
    )
    try:
        coef = probe(run_path, stamp, name).coef
        scores["weight_mass"] = compute.weight_mass(coef, model.num_simplices, model.vocab)
    except SemprobeError:
        scores["weight_mass"] = np.nan
    return scores
