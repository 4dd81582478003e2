"""The pre-training configuration: one flat, typed record of every option.

Options left as ``None`` take the default of their (method, dataset) pair when the record is
:meth:`PretrainConfig.resolved` (the tables are in :mod:`semprobe.pretrain.defaults`). The method
defaults are the SEM authors' CIFAR-100 scripts (Lavoie et al., ICLR 2023, arXiv 2204.00616;
github lavoiems/simplicial-embeddings, ``bash_files/pretrain/cifar/sd*.sh``, with solo-learn's
argument defaults where a script sets nothing), all at ResNet-18 with the CIFAR stem, batch 256,
1000 epochs, 10 warm-up epochs then cosine decay, L = 5000, V = 13, LARS with trust coefficient
0.02 and learning-rate clipping unless said otherwise:

=========== ============ ======================================================================
method      script       values
=========== ============ ======================================================================
byol        sdbyol.sh    lr 1.0, wd 1e-5, tau 1 / 1, projector 4096-256, predictor 4096,
                         EMA 0.99 -> 1.0, classifier lr 0.1
mocov2plus  sdmoco.sh    SGD (momentum 0.9), lr 0.3, wd 1e-4, projector 2048-256 without BN,
                         queue 32768, temperature 0.2, EMA 0.99 -> 0.999, classifier lr 0.3
simclr      sdsimclr.sh  lr 0.4, wd 1e-5, tau 0.17 / 0.78, projector 2048-256 without BN,
                         temperature 0.2, classifier lr 0.1
barlowtwins sdbarlow.sh  lr 0.3, wd 1e-4, tau 1 / 0.99, projector 2048-2048-2048,
                         lambda 0.0051, loss scale 0.1, classifier lr 0.3 (solo-learn's default)
vicreg      sdvicreg.sh  lr 0.3, wd 1e-4, tau 1 (both views), projector 2048-2048-2048,
                         weights 25 / 25 / 1, classifier lr 0.3 (solo-learn's default)
swav        sdswav.sh    lr 0.6 (cosine to 0.1 % of it: min_lr 0.0006), wd 1e-6, tau 0.85 / 1.5,
                         projector 2048-128, 3000 prototypes frozen for 2 epochs, temperature
                         0.1, queue 3840 from epoch 50, Sinkhorn 3 iterations at epsilon 0.05,
                         biases and norms not excluded from LARS, classifier lr 0.1
dino        sddino.sh    lr 0.3, wd 1e-6, tau 1 / 1, head 2048-2048-256 -> 4096 prototypes
                         (last layer frozen for 1 epoch), student temperature 0.1, teacher
                         0.04 -> 0.07 over 50 epochs, centre momentum 0.9, EMA 0.9995 -> 1.0,
                         classifier lr 0.1
=========== ============ ======================================================================

``tau_online`` is the SEM temperature of the analysed (online) branch. ``tau_target`` is that of
the momentum branch for BYOL, MoCo v2+ and DINO; the methods without one apply it to the second
view, as the authors' ``sdsimclr``, ``sdbarlow`` and ``sdswav`` do (``sdvicreg`` uses tau_online
for both views, which is ``tau_target = tau_online``). The authors' ``sdmoco.sh`` runs at
tau 0.04 / 0.01; semprobe keeps MoCo v2+ at 1 / 1 like BYOL (the ``sdbyol`` L = 5000, V = 13
script), so that the two original methods keep the defaults their checkpoints were trained with.

The learning rate is given for a total batch of 256 and scaled linearly with the total batch
(per-device batch x devices x nodes), as solo-learn does.

``synthetic`` (the built-in data set) defaults to a CPU-sized run instead: ``small_cnn``,
L = 64, V = 13, 512-wide heads, batch 64, 5 epochs, and method options that act within five
epochs (:data:`~semprobe.pretrain.defaults.SYNTHETIC_METHOD_DEFAULTS`); on
``synthetic:train=10`` (1,000 images) a run takes under a minute on two CPU cores.
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
from semprobe.pretrain.defaults import (
    DATASET_DEFAULTS,
    DATASET_KINDS,
    METHOD_DEFAULTS,
    METHOD_OPTIONS,
    METHODS,
    MOMENTUM_METHODS,
    check_method,
    dataset_kind,
    default_for,
    methods_using,
    unused_value,
)

__all__ = [
    "ADAMW_CLASSIFIER_LR",
    "BACKBONES",
    "DATASET_DEFAULTS",
    "DATASET_KINDS",
    "METHODS",
    "METHOD_DEFAULTS",
    "OPTIMIZERS",
    "PRECISIONS",
    "PretrainConfig",
    "dataset_kind",
    "default_for",
    "load_config_file",
]

# Kept in step with semprobe.backbones.BACKBONES and semprobe.model.MAX_SEM_WIDTH, which import
# torch: the command line reads this module just to build its --help.
BACKBONES = ("resnet18", "resnet50", "small_cnn")
MAX_SEM_WIDTH = 10**8
OPTIMIZERS = ("lars", "sgd", "adamw")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
# The online classifiers' rate above suits LARS and SGD; with AdamW (whose steps do not scale with
# the gradient) 0.1 makes them diverge, so AdamW runs take this one unless it is given.
ADAMW_CLASSIFIER_LR = 1e-3


@dataclass(frozen=True)
class PretrainConfig:
    """Every pre-training option (CLI ``--some-option`` is field ``some_option``).

    ``None`` means "the default for this method and dataset" (see the module docstring).

    Examples
    --------
    >>> cfg = PretrainConfig(method="simclr", dataset="cifar100").resolved()
    >>> cfg.lr, cfg.tau_online, cfg.tau_target, cfg.temperature, cfg.queue_size
    (0.4, 0.17, 0.78, 0.2, 0)
    >>> PretrainConfig(method="simclr", num_prototypes=10).resolved()
    Traceback (most recent call last):
    ...
    semprobe.errors.SemprobeError: num_prototypes does not apply to simclr (only to swav, dino)
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
    tau_online: float | None = None
    tau_target: float | None = None
    online_taus: tuple[float, ...] = (0.01, 0.1, 1.0)
    proj_hidden_dim: int | None = None
    proj_output_dim: int | None = None
    pred_hidden_dim: int | None = None
    queue_size: int | None = None
    temperature: float | None = None
    num_prototypes: int | None = None
    queue_start_epoch: int | None = None
    freeze_prototypes_epochs: int | None = None
    teacher_temperature: float | None = None
    warmup_teacher_temperature: float | None = None
    warmup_teacher_epochs: int | None = None
    barlow_lambda: float | None = None
    scale_loss: float | None = None
    sim_loss_weight: float | None = None
    var_loss_weight: float | None = None
    cov_loss_weight: float | None = None
    epochs: int | None = None
    max_steps: int = -1
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    classifier_lr: float | None = None
    weight_decay: float | None = None
    lars_eta: float = 0.02
    warmup_epochs: int | None = None
    base_momentum: float | None = None
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
        """A copy with every ``None`` default filled in for (method, dataset), validated.

        Raises
        ------
        SemprobeError
            An unknown method or dataset, a method option given to a method that does not read
            it, or any value out of range (see :meth:`validate`).
        """
        dataset_kind(self.dataset)
        check_method(self.method)
        self._refuse_foreign_options()
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

    def _refuse_foreign_options(self) -> None:
        """A method option set for a method that does not read it is a mistake: say so."""
        for name in sorted(METHOD_OPTIONS - set(METHOD_DEFAULTS[self.method])):
            value = getattr(self, name)
            if value is not None and value != unused_value(name):
                raise SemprobeError(
                    f"{name} does not apply to {self.method} (only to "
                    f"{', '.join(methods_using(name))})"
                )

    def uses(self, name: str) -> bool:
        """Whether this config's method reads option ``name``."""
        return name not in METHOD_OPTIONS or name in METHOD_DEFAULTS[self.method]

    def validate(self) -> None:
        """Raise :class:`SemprobeError` naming the first option that is out of range."""
        dataset_kind(self.dataset)
        check_method(self.method)
        for name, allowed in (
            ("backbone", BACKBONES),
            ("optimizer", OPTIMIZERS),
            ("precision", PRECISIONS),
        ):
            if getattr(self, name) not in allowed:
                raise SemprobeError(
                    f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(allowed)}"
                )
        for name in ("tau_online", "tau_target"):
            _check_tau(name, getattr(self, name))
        if not self.online_taus:
            raise SemprobeError("online_taus needs at least one temperature")
        for tau in self.online_taus:
            _check_tau("online_taus", tau)
        if self.method in MOMENTUM_METHODS:
            self._validate_momentum()
        self._validate_sizes()
        self._validate_rates()
        self._validate_method_options()

    def _validate_momentum(self) -> None:
        for name in ("base_momentum", "final_momentum"):
            value = getattr(self, name)
            if not (_is_number(value) and 0.0 <= value <= 1.0):
                raise SemprobeError(f"{name} must be in [0, 1], got {value!r}")
        if self.base_momentum > self.final_momentum:  # type: ignore[operator]
            raise SemprobeError(
                f"base_momentum {self.base_momentum} is larger than final_momentum "
                f"{self.final_momentum}: the EMA momentum may only grow"
            )

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
        for name, value in positive.items():
            _check_int(name, value, 1)
        if self.sem and self.num_simplices * self.vocab > MAX_SEM_WIDTH:  # type: ignore[operator]
            raise SemprobeError(f"L*V must be at most {MAX_SEM_WIDTH}")
        if not _is_int(self.batch_size) or self.batch_size < 2:  # type: ignore[operator]
            raise SemprobeError(
                f"batch_size must be at least 2 (batch norm needs two samples), got "
                f"{self.batch_size!r}"
            )
        if self.max_steps != -1 and self.max_steps < 1:
            raise SemprobeError(
                f"max_steps must be -1 (no limit) or positive, got {self.max_steps}"
            )
        for name in ("warmup_epochs", "workers", "threads", "seed"):
            _check_int(name, getattr(self, name), 0)

    def _validate_rates(self) -> None:
        for name in ("lr", "classifier_lr", "lars_eta"):
            _check_float(name, getattr(self, name), positive=True)
        for name in ("weight_decay", "grad_clip"):
            _check_float(name, getattr(self, name), positive=False)

    def _validate_method_options(self) -> None:
        """Range checks of the method options this method reads."""
        for name, (kind, positive) in _METHOD_OPTION_RULES.items():
            if not self.uses(name):
                continue
            value = getattr(self, name)
            if kind is int:
                _check_int(name, value, 1 if positive else 0)
            else:
                _check_float(name, value, positive=positive)
        if self.uses("queue_size"):
            _check_int("queue_size", self.queue_size, 1 if self.method == "mocov2plus" else 0)
        if self.method in ("mocov2plus", "swav") and self.queue_size % self.batch_size:  # type: ignore[operator]
            raise SemprobeError(
                f"queue_size {self.queue_size} must be a multiple of batch_size "
                f"{self.batch_size} (each step replaces whole batches of keys, as in MoCo)"
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
# Method options: (type, must be > 0 rather than >= 0). mocov2plus needs a queue; swav may run
# without one (queue_size 0), as the authors' code allows.
_METHOD_OPTION_RULES: dict[str, tuple[type, bool]] = {
    "pred_hidden_dim": (int, True),
    "temperature": (float, True),
    "num_prototypes": (int, True),
    "queue_start_epoch": (int, False),
    "freeze_prototypes_epochs": (int, False),
    "teacher_temperature": (float, True),
    "warmup_teacher_temperature": (float, True),
    "warmup_teacher_epochs": (int, False),
    "barlow_lambda": (float, False),
    "scale_loss": (float, True),
    "sim_loss_weight": (float, False),
    "var_loss_weight": (float, False),
    "cov_loss_weight": (float, False),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        kind = "a positive" if minimum else "a non-negative"
        raise SemprobeError(f"{name} must be {kind} integer, got {value!r}")


def _check_float(name: str, value: Any, positive: bool) -> None:
    ok = _is_number(value) and math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        kind = "a positive" if positive else "a non-negative"
        raise SemprobeError(f"{name} must be {kind} number, got {value!r}")


def _check_tau(name: str, value: Any) -> None:
    """The rule of :func:`semprobe.sem.check_tau` (finite, > 0), naming the option."""
    if not (_is_number(value) and math.isfinite(value) and value > 0):
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
