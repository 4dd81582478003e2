"""The evaluation protocols inside a :class:`~semprobe.studies.Study`; their study-file sections.

A study whose ``analyses`` name ``knn``, ``linear_grid``, ``robustness`` or ``transfer`` runs that
protocol on every model (:mod:`semprobe.protocols`) and writes its tables at the top of the run,
where the dashboard's protocol views find them. The paper's Tables 1-3 for a list of checkpoints
are then one study file::

    dataset = "imagenet:data/imagenet"
    analyses = ["linear_grid", "robustness", "transfer"]

    [checkpoints]
    byol = "ckpt/byol.ckpt"
    byol-sem = "ckpt/byol-sem.ckpt"

    [linear_grid]            # Table 1 and the two temperatures
    train_taus = [0.01, 0.1, 1]
    l2 = [1e-4, 1e-3]

    [robustness]             # Table 2
    label_fractions = [1.0, 0.01]
    evals = { v2 = "classfolder:data/imagenetv2", r = "classfolder:data/imagenet-r",
              a = "classfolder:data/imagenet-a", c = "imagenet-c:data/imagenet-c" }

    [transfer]               # Table 3
    datasets = ["food101", "cifar10", "cifar100", "sun397", "dtd", "pets", "flowers102",
                "caltech101", "stanford_cars"]

Paths in dataset names, label files and ``@FILE`` class lists are relative to the study file.
Every section is checked when the file is read; the evaluation sets and label files are opened
and their classes checked before any model trains.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from semprobe.checkpoint import LoadedModel
from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions
from semprobe.features import FeatureSet
from semprobe.protocols import (
    KNNSettings,
    LinearGridSettings,
    RobustnessSettings,
    TransferSettings,
    strengths_from,
)
from semprobe.protocols.evaluate import (
    RobustnessPlan,
    knn_of,
    linear_grid_of,
    prepare_robustness,
    prepare_transfer,
    robustness_of,
    transfer_of,
)
from semprobe.protocols.reports import PROTOCOLS, complete_tables, write_report

__all__ = [
    "PROTOCOLS",
    "ProtocolOutputs",
    "ProtocolSettings",
    "check_protocols",
    "prepare_protocols",
    "protocol_parameters",
    "protocol_sections",
    "protocol_tidy",
    "run_model_protocols",
    "write_protocol_tables",
]


@dataclass(frozen=True)
class ProtocolSettings:
    """The settings of each protocol a study may run (robustness and transfer have no defaults:
    they need evaluation sets and datasets)."""

    knn: KNNSettings = field(default_factory=KNNSettings)
    linear_grid: LinearGridSettings = field(default_factory=LinearGridSettings)
    robustness: RobustnessSettings | None = None
    transfer: TransferSettings | None = None


def check_protocols(analyses: Sequence[str], settings: ProtocolSettings) -> None:
    """Refuse a protocol in ``analyses`` whose settings are missing."""
    if "robustness" in analyses and (settings.robustness is None or not settings.robustness.evals):
        raise SemprobeError("the robustness analysis needs a [robustness] section with evals")
    if "transfer" in analyses and settings.transfer is None:
        raise SemprobeError("the transfer analysis needs a [transfer] section with datasets")


@dataclass
class ProtocolOutputs:
    """What the protocols collect over a study's models."""

    per_model: dict[str, list[dict[str, pd.DataFrame]]] = field(default_factory=dict)
    robustness_plan: RobustnessPlan | None = None


def prepare_protocols(
    analyses: Sequence[str], settings: ProtocolSettings, options: ExtractionOptions
) -> ProtocolOutputs:
    """The checks that need no features (datasets, classes, label files), before any training."""
    outputs = ProtocolOutputs()
    if "robustness" in analyses and settings.robustness is not None:
        outputs.robustness_plan = prepare_robustness(options, settings.robustness)
    if "transfer" in analyses and settings.transfer is not None:
        prepare_transfer(settings.transfer, options)
    return outputs


def run_model_protocols(
    analyses: Sequence[str],
    settings: ProtocolSettings,
    outputs: ProtocolOutputs,
    name: str,
    loaded: LoadedModel,
    options: ExtractionOptions,
    train: FeatureSet,
    test: FeatureSet,
) -> None:
    """Every protocol of ``analyses`` on one model; its tables go into ``outputs``."""
    device = options.device
    for protocol in (p for p in PROTOCOLS if p in analyses):
        if protocol == "knn":
            tables = knn_of(name, train, test, settings.knn, device)
        elif protocol == "linear_grid":
            tables = linear_grid_of(name, train, test, settings.linear_grid, device)
        elif protocol == "robustness":
            assert settings.robustness is not None and outputs.robustness_plan is not None
            plan = outputs.robustness_plan
            tables = robustness_of(name, loaded, options, settings.robustness, plan)
        else:
            assert settings.transfer is not None
            tables = transfer_of(name, loaded, options, settings.transfer)
        outputs.per_model.setdefault(protocol, []).append(tables)


def write_protocol_tables(
    work: Path, outputs: ProtocolOutputs
) -> dict[str, dict[str, pd.DataFrame]]:
    """Each protocol's tables over all models, written at the top of the run ``work``."""
    written = {}
    for protocol, per_model in outputs.per_model.items():
        names = list(dict.fromkeys(k for tables in per_model for k in tables))
        tables = {n: pd.concat([t[n] for t in per_model], ignore_index=True) for n in names}
        tables = complete_tables(protocol, tables)
        write_report(work, protocol, tables)
        written[protocol] = tables
    return written


def _knn_row(r: Mapping[str, Any]) -> tuple[str, float, str, float]:
    temperature = "" if pd.isna(r["temperature"]) else f"_T{r['temperature']:g}"
    return r["representation"], r["tau"], f"knn_top1_k{r['k']}{temperature}", r["top1"]


def _grid_row(r: Mapping[str, Any]) -> tuple[str, float, str, float]:
    metric = "top1" if pd.isna(r["tau_eval"]) else f"top1_eval_tau{r['tau_eval']:g}"
    return r["representation"], r["tau_train"], metric, r["top1"]


def _robust_row(r: Mapping[str, Any]) -> tuple[str, float, str, float]:
    where = r["eval"]
    if isinstance(r.get("corruption"), str):
        where += f"/{r['corruption']}/{int(r['severity'])}"
    return r["representation"], r["tau"], f"top1:{r['labels']}:{where}", r["top1"]


def _transfer_row(r: Mapping[str, Any]) -> tuple[str, float, str, float]:
    return r["representation"], r["tau"], f"{r['dataset']}:{r['metric']}", r["value"]


#: protocol -> (its table, record -> (representation, tau, metric, value)).
_TIDY = {
    "knn": ("knn", _knn_row),
    "linear_grid": ("linear_table", _grid_row),
    "robustness": ("robustness", _robust_row),
    "transfer": ("transfer", _transfer_row),
}


def protocol_tidy(tables: Mapping[str, Mapping[str, pd.DataFrame]]) -> pd.DataFrame:
    """The protocols' headline numbers as the study table's ``model, analysis, representation,
    tau, metric, value`` rows."""
    rows = []
    for protocol, protocol_tables in tables.items():
        name, row = _TIDY[protocol]
        for record in protocol_tables[name].to_dict("records"):
            representation, tau, metric, value = row(record)
            rows.append(
                {
                    "model": record["model"],
                    "analysis": protocol,
                    "representation": representation,
                    "tau": tau,
                    "metric": metric,
                    "value": value,
                }
            )
    columns = ["model", "analysis", "representation", "tau", "metric", "value"]
    return pd.DataFrame(rows, columns=columns)


def protocol_parameters(analyses: Sequence[str], settings: ProtocolSettings) -> dict[str, Any]:
    """The settings of the protocols a study ran, for ``run.json``."""
    return {
        p: dataclasses.asdict(getattr(settings, p))
        for p in PROTOCOLS
        if p in analyses and getattr(settings, p) is not None
    }


# -- study-file sections ------------------------------------------------------------------------

PATH_KINDS = ("imagefolder", "imagenet", "classfolder", "imagenet-c")


def resolve_dataset(name: str, resolve: Callable[[str], Path]) -> str:
    """A dataset name with its folder made relative to the study file."""
    kind, sep, rest = str(name).partition(":")
    return f"{kind}:{resolve(rest)}" if sep and kind in PATH_KINDS and rest else str(name)


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _strength_keys(section: dict[str, Any], where: str) -> dict[str, Any]:
    """``l1 = [...]`` / ``l2 = [...]`` (or ``strengths = [{l1 = ..}, ..]``) as strengths."""
    l1, l2 = section.pop("l1", None), section.pop("l2", None)
    if l1 is not None or l2 is not None:
        if "strengths" in section:
            raise SemprobeError(f"{where}: give either strengths or l1 / l2 lists, not both")
        section["strengths"] = strengths_from(_listed(l1), _listed(l2))
    return section


def _section(
    data: Mapping[str, Any], key: str, where: str, cls: type, fix: Callable[[dict], dict]
) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SemprobeError(f"{where}: [{key}] must be a table")
    allowed = {f.name for f in dataclasses.fields(cls)}
    section = dict(value)
    if "strengths" in allowed:
        section = _strength_keys(section, f"{where} [{key}]")
        allowed |= {"l1", "l2"}
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise SemprobeError(
            f"unknown key {unknown[0]!r} in {where} [{key}]; allowed: {', '.join(sorted(allowed))}"
        )
    return cls(**fix(section))


def protocol_sections(
    data: Mapping[str, Any], file: Path, resolve: Callable[[str], Path]
) -> ProtocolSettings:
    """The ``[knn]``, ``[linear_grid]``, ``[robustness]`` and ``[transfer]`` tables of a file."""
    where = str(file)

    def knn(section: dict) -> dict:
        if "taus" not in section and "taus" in data:
            section["taus"] = data["taus"]
        return section

    def robustness(section: dict) -> dict:
        evals = section.get("evals") or {}
        if not isinstance(evals, Mapping):
            raise SemprobeError(f"{where} [robustness]: evals must map names to datasets")
        section["evals"] = {n: resolve_dataset(d, resolve) for n, d in evals.items()}
        files = section.get("label_files") or {}
        section["label_files"] = {n: str(resolve(str(f))) for n, f in dict(files).items()}
        subsets = dict(section.get("subsets") or {})
        section["subsets"] = {
            n: (f"@{resolve(v[1:])}" if isinstance(v, str) and v.startswith("@") else v)
            for n, v in subsets.items()
        }
        return section

    def transfer(section: dict) -> dict:
        datasets = section.get("datasets") or []
        section["datasets"] = [resolve_dataset(d, resolve) for d in datasets]
        return section

    found = {
        "knn": _section(data, "knn", where, KNNSettings, knn),
        "linear_grid": _section(data, "linear_grid", where, LinearGridSettings, dict),
        "robustness": _section(data, "robustness", where, RobustnessSettings, robustness),
        "transfer": _section(data, "transfer", where, TransferSettings, transfer),
    }
    return ProtocolSettings(**{k: v for k, v in found.items() if v is not None})
