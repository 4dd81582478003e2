"""The pre-training configuration: one flat, typed record of every option.

Options left as ``None`` take the default of their (method, dataset) pair when the record is
:meth:`PretrainConfig.resolved`. The method defaults are those of the SEM authors' CIFAR-100 scripts
(Lavoie et al., ICLR 2023, arXiv 2204.00616; github lavoiems/simplicial-embeddings,
``bash_files/pretrain/cifar``) and of solo-learn's CIFAR configs they were forked from
(``scripts/pretrain/cifar/{byol,mocov2plus}.yaml``):

* BYOL (+SEM): LARS (trust coefficient 0.02, learning-rate clipping, biases and norms excluded),
  lr 1.0, weight decay 1e-5, projector 4096-256, predictor 4096, EMA 0.99 -> 1.0.
* MoCo v2+ (+SEM): SGD (momentum 0.9), lr 0.3, weight decay 1e-4, projector 2048-256 without BN,
  queue 32768, temperature 0.2, EMA 0.99 -> 0.999.
* Both: batch 256, 1000 epochs, 10 warm-up epochs then cosine decay, L = 5000, V = 13,
  tau_online = tau_target = 1.0 (the authors' ``sdbyol`` L=5000/V=13 CIFAR-100 script).

The learning rate is given for a total batch of 256 and scaled linearly with the total batch
(per-device batch x devices x nodes), as solo-learn does.

``synthetic`` (the built-in data set) defaults to a CPU-sized run instead: ``small_cnn``,
L = 64, V = 13, 512-wide heads, batch 64, 5 epochs; on ``synthetic:train=10`` (1,000 images) that
takes under a minute on two CPU cores.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semprobe.configfile import read_table_file
from semprobe.errors import SemprobeError

METHODS = ("byol", "mocov2plus")
# Kept in step with semprobe.backbones.BACKBONES and semprobe.model.MAX_SEM_WIDTH, which import
# torch: the command line reads this module just to build its --help.
BACKBONES = ("resnet18", "resnet50", "small_cnn")
MAX_SEM_WIDTH = 10**8
OPTIMIZERS = ("lars", "sgd", "adamw")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
DATASET_KINDS = ("cifar10", "cifar100", "synthetic", "imagefolder")

# Per-method values (see the module docstring for their sources).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "byol": {
        "optimizer": "lars",
        "lr": 1.0,
        "classifier_lr": 0.1,
        "weight_decay": 1e-5,
        "final_momentum": 1.0,
        "proj_hidden_dim": 4096,
        "pred_hidden_dim": 4096,
        "queue_size": 0,
    },
    "mocov2plus": {
        "optimizer": "sgd",
        "lr": 0.3,
        "classifier_lr": 0.3,
        "weight_decay": 1e-4,
        "final_momentum": 0.999,
        "proj_hidden_dim": 2048,
        "pred_hidden_dim": 0,
        "queue_size": 32768,
    },
}
# The online classifiers' rate above suits LARS and SGD; with AdamW (whose steps do not scale with
# the gradient) 0.1 makes them diverge, so AdamW runs take this one unless it is given.
ADAMW_CLASSIFIER_LR = 1e-3
# Per-dataset values; "paper" covers cifar10, cifar100 and imagefolder.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "paper": {
        "backbone": "resnet18",
        "num_simplices": 5000,
        "vocab": 13,
        "batch_size": 256,
        "epochs": 1000,
        "warmup_epochs": 10,
        "workers": 4,
        "checkpoint_every": 10,
    },
    "synthetic": {
        "backbone": "small_cnn",
        "num_simplices": 64,
        "vocab": 13,
        "batch_size": 64,
        "epochs": 5,
        "warmup_epochs": 1,
        "workers": 0,
        "checkpoint_every": 1,
        "proj_hidden_dim": 512,
        "pred_hidden_dim": 512,
        "queue_size": 4096,
    },
}


def dataset_kind(name: str) -> str:
    """``cifar10``, ``cifar100``, ``synthetic`` or ``imagefolder`` for a ``--dataset`` value."""
    kind, _, rest = name.partition(":")
    if kind not in DATASET_KINDS or (kind in ("cifar10", "cifar100") and rest):
        raise SemprobeError(
            f"unknown dataset {name!r}; choose cifar10, cifar100, imagefolder:PATH or "
            "synthetic[:train=N,test=M,seed=S]"
        )
    if kind == "imagefolder" and not rest:
        raise SemprobeError("imagefolder needs a path: --dataset imagefolder:PATH")
    return kind


def default_for(name: str, method: str, dataset: str) -> Any:
    """The default of option ``name`` for a (method, dataset) pair (after validating both)."""
    if method not in METHODS:
        raise SemprobeError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    family = "synthetic" if dataset_kind(dataset) == "synthetic" else "paper"
    if name == "queue_size" and method != "mocov2plus":
        return 0
    if name == "pred_hidden_dim" and method != "byol":
        return 0
    for table in (DATASET_DEFAULTS[family], METHOD_DEFAULTS[method]):
        if name in table:
            return table[name]
    raise KeyError(name)


@dataclass(frozen=True)
class PretrainConfig:
    """Every pre-training option (CLI ``--some-option`` is field ``some_option``).

    ``None`` means "the default for this method and dataset" (see the module docstring).
    """

    method: str = "byol"
    sem: bool = True
    dataset: str = "cifar100"
    data_root: str | None = None
    download: bool = True
    image_size: int = 32
    backbone: str | None = None
    cifar_stem: bool = True
    num_simplices: int | None = None
    vocab: int | None = None
    tau_online: float = 1.0
    tau_target: float = 1.0
    online_taus: tuple[float, ...] = (0.01, 0.1, 1.0)
    proj_hidden_dim: int | None = None
    proj_output_dim: int = 256
    pred_hidden_dim: int | None = None
    queue_size: int | None = None
    temperature: float = 0.2
    epochs: int | None = None
    max_steps: int = -1
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    classifier_lr: float | None = None
    weight_decay: float | None = None
    lars_eta: float = 0.02
    warmup_epochs: int | None = None
    base_momentum: float = 0.99
    final_momentum: float | None = None
    precision: str = "32"
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    sync_batchnorm: bool = False
    grad_clip: float = 0.0
    workers: int | None = None
    threads: int = 0
    seed: int = 0
    out: str = "runs/pretrain"
    checkpoint_every: int | None = None
    keep_all_checkpoints: bool = False
    resume: str | None = None
    deterministic: bool = False
    log_every: int = 50
    progress: bool = True

    def resolved(self) -> PretrainConfig:
        """A copy with every ``None`` default filled in for (method, dataset), validated."""
        fills = {
            f.name: default_for(f.name, self.method, self.dataset)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is None and f.name not in _OPTIONAL_FIELDS
        }
        if "classifier_lr" in fills and fills.get("optimizer", self.optimizer) == "adamw":
            fills["classifier_lr"] = ADAMW_CLASSIFIER_LR
        config = dataclasses.replace(self, **fills)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise :class:`SemprobeError` naming the first option that is out of range."""
        dataset_kind(self.dataset)
        if self.method not in METHODS:
            raise SemprobeError(
                f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if self.backbone not in BACKBONES:
            raise SemprobeError(
                f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise SemprobeError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.precision not in PRECISIONS:
            raise SemprobeError(
                f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        for name in ("tau_online", "tau_target"):
            _check_tau(name, getattr(self, name))
        if not self.online_taus:
            raise SemprobeError("online_taus needs at least one temperature")
        for tau in self.online_taus:
            _check_tau("online_taus", tau)
        for name in ("base_momentum", "final_momentum"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise SemprobeError(f"{name} must be in [0, 1], got {value!r}")
        if self.base_momentum > self.final_momentum:  # type: ignore[operator]
            raise SemprobeError(
                f"base_momentum {self.base_momentum} is larger than final_momentum "
                f"{self.final_momentum}: the EMA momentum may only grow"
            )
        self._validate_sizes()

    def _validate_sizes(self) -> None:
        positive = {
            "image_size": self.image_size,
            "proj_hidden_dim": self.proj_hidden_dim,
            "proj_output_dim": self.proj_output_dim,
            "epochs": self.epochs,
            "num_nodes": self.num_nodes,
            "checkpoint_every": self.checkpoint_every,
            "log_every": self.log_every,
        }
        if self.sem:
            positive |= {"num_simplices": self.num_simplices, "vocab": self.vocab}
        if self.method == "byol":
            positive["pred_hidden_dim"] = self.pred_hidden_dim
        if self.method == "mocov2plus":
            positive["queue_size"] = self.queue_size
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SemprobeError(f"{name} must be a positive integer, got {value!r}")
        if self.sem and self.num_simplices * self.vocab > MAX_SEM_WIDTH:  # type: ignore[operator]
            raise SemprobeError(f"L*V must be at most {MAX_SEM_WIDTH}")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise SemprobeError(
                f"batch_size must be at least 2 (batch norm needs two samples), got "
                f"{self.batch_size!r}"
            )
        if self.max_steps != -1 and self.max_steps < 1:
            raise SemprobeError(
                f"max_steps must be -1 (no limit) or positive, got {self.max_steps}"
            )
        for name in ("lr", "classifier_lr", "temperature", "lars_eta"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise SemprobeError(f"{name} must be a positive number, got {value!r}")
        for name in ("weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise SemprobeError(f"{name} must be a non-negative number, got {value!r}")
        for name in ("warmup_epochs", "workers", "threads", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise SemprobeError(f"{name} must be a non-negative integer, got {value!r}")
        if self.method == "mocov2plus" and self.queue_size % self.batch_size:  # type: ignore[operator]
            raise SemprobeError(
                f"queue_size {self.queue_size} must be a multiple of batch_size "
                f"{self.batch_size} (each step replaces one block of keys, as in MoCo)"
            )

    @property
    def sem_shape(self) -> tuple[int, int]:
        """(L, V) of the model this config trains; (0, 0) without SEM."""
        return (self.num_simplices or 0, self.vocab or 0) if self.sem else (0, 0)

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, int, float, bool, None, list, dict) for checkpoints and logs."""
        data = dataclasses.asdict(self)
        data["online_taus"] = [float(t) for t in self.online_taus]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PretrainConfig:
        """Build from a mapping of option names (``-`` or ``_``), naming unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SemprobeError(f"unknown pretrain option(s): {', '.join(unknown)}")
        if "online_taus" in values and values["online_taus"] is not None:
            values["online_taus"] = tuple(values["online_taus"])
        return cls(**values)


# Fields whose None is a real value, not "use the default".
_OPTIONAL_FIELDS = frozenset({"data_root", "resume"})


def _check_tau(name: str, value: Any) -> None:
    """The rule of :func:`semprobe.sem.check_tau` (finite, > 0), naming the option."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise SemprobeError(f"{name} must be a positive finite number, got {value!r}")


# -- config files ----------------------------------------------------------------------------------

# Options whose command-line and config-file spelling differs from the config field.
OPTION_ALIASES = {"proj_dim": "proj_output_dim"}


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(PretrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(PretrainConfig)}


def _accepts(kind: Any, value: Any) -> bool:
    """Whether a config-file value fits a field annotation (bool is not a number here)."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return any(_accepts(k, value) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if typing.get_origin(kind) is tuple:
        return isinstance(value, list | tuple) and all(_accepts(float, v) for v in value)
    return False


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a flat TOML or YAML file of options; keys may use ``-`` or ``_``.

    Raises
    ------
    SemprobeError
        Missing or unparsable file, a non-flat layout, unknown keys (named), ill-typed values.
    """
    file = Path(path)
    data = read_table_file(file, "config file")
    values = {str(k).replace("-", "_"): v for k, v in data.items()}
    values = {OPTION_ALIASES.get(k, k): v for k, v in values.items()}
    kinds = _field_types()
    unknown = sorted(k for k in values if k not in kinds)
    if unknown:
        raise SemprobeError(f"config file {file}: unknown option(s) {', '.join(unknown)}")
    for key, value in values.items():
        if key == "devices" and isinstance(value, int | list):
            values[key] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        elif not _accepts(kinds[key], value):
            raise SemprobeError(f"config file {file}: {key} = {value!r} has the wrong type")
    return values
