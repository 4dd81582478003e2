"""Study files: a whole :class:`~semprobe.studies.Study` in one TOML or YAML file."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from semprobe.analysis import RelevanceSettings
from semprobe.configfile import read_table_file
from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions
from semprobe.studies.protocols import PROTOCOLS, protocol_sections
from semprobe.studies.seed_data import for_seed
from semprobe.studies.study import ANALYSES, Study, Trainer
from semprobe.studies.sweeps import DEFAULT_TAUS, ProbeSettings

_TOP_KEYS = {
    "dataset",
    "taus",
    "twin_taus",
    "analyses",
    "out",
    "checkpoints",
    "probe",
    "relevance",
    "extraction",
    "pretrain",
    "seeds",  # one study per seed: semprobe.studies.seeds
    *PROTOCOLS,  # [knn], [linear_grid], [robustness], [transfer]
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
    "image_size",
    "resize",
    "normalize",
    "skip_unreadable",
}


def _check_keys(section: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SemprobeError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in "
            f"{section}; allowed: {', '.join(sorted(allowed))}"
        )


def _table(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise SemprobeError(f"{where}: [{key}] must be a table")
    return dict(value)


def _sections(data: Mapping[str, Any], file: Path, resolve: Any) -> dict[str, Any]:
    """The Study keyword arguments of the file's [extraction], [probe] and [relevance] tables."""
    extraction = _table(data, "extraction", str(file))
    _check_keys(f"{file} [extraction]", extraction, _EXTRACTION_KEYS)
    if "cache_dir" in extraction:
        extraction["cache_dir"] = resolve(str(extraction["cache_dir"]))
    probe = _table(data, "probe", str(file))
    _check_keys(f"{file} [probe]", probe, {f.name for f in dataclasses.fields(ProbeSettings)})
    relevance = _table(data, "relevance", str(file))
    _check_keys(
        f"{file} [relevance]", relevance, {f.name for f in dataclasses.fields(RelevanceSettings)}
    )
    if isinstance(relevance.get("superclasses"), list):
        relevance["superclasses"] = ",".join(map(str, relevance["superclasses"]))
    if relevance.get("synsets") is not None:  # a class,synset file, relative to the study file
        relevance["synsets"] = str(resolve(str(relevance["synsets"])))
    return {
        "options": ExtractionOptions(**extraction),
        "probe": ProbeSettings(**probe),
        "relevance": RelevanceSettings(**relevance),
        "protocols": protocol_sections(data, file, resolve),
    }


def load_study(
    path: str | Path,
    trainer: Trainer | None = None,
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
) -> tuple[Study, Path]:
    """Read a study file (TOML or YAML); relative paths are relative to the file.

    Parameters
    ----------
    path:
        The study file.
    trainer:
        What trains the file's ``[pretrain.<name>]`` sections (the command line passes
        :class:`semprobe.pretrain.study_trainer.StudyTrainer`); needed only when it has any.
    seed:
        For a file with ``seeds = [...]``: the study of this seed (required there;
        :func:`semprobe.studies.seed_data.for_seed`), with the output ``<out>/seed-<seed>``.
    seeds:
        Replaces the file's ``seeds`` (``semprobe study --seeds``); the file may have none.

    Returns
    -------
    (Study, Path)
        The study and its output directory (``out``, default ``runs/<file stem>``).
    """
    file = Path(path)
    data = read_table_file(file, "study file")
    _check_keys(f"study file {file}", data, _TOP_KEYS)
    if seeds is not None:
        data = {**data, "seeds": list(seeds)}
    if "seeds" in data or seed is not None:
        if seed is None:
            raise SemprobeError(
                f"{file} has seeds: load one seed's study with load_study(..., seed=S), or all "
                "with semprobe.studies.load_seeded_study (as semprobe study does)"
            )
        data = for_seed(data, seed, str(file))
    base = file.parent

    def resolve(p: str) -> Path:
        return (base / p) if not Path(p).is_absolute() else Path(p)

    checkpoints = data.get("checkpoints") or {}
    if not isinstance(checkpoints, dict):
        raise SemprobeError(f"{file}: [checkpoints] must map model names to files")
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
        twin_taus=data.get("twin_taus"),
        analyses=data.get("analyses", list(ANALYSES)),
        pretrain=pretrain,
        trainer=trainer,
        **_sections(data, file, resolve),
    )
    out = resolve(str(data["out"])) if "out" in data else Path("runs") / file.stem
    return study, out if seed is None else out / f"seed-{seed}"
