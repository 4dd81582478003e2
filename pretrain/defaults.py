"""The default of every pre-training option, per method and per dataset family.

The values and their sources are listed in :mod:`semprobe.pretrain.config`'s docstring. This
module is plain Python (no torch), because the command line reads it to build ``--help``.

Options fall in two kinds:

* common options (every method reads them): optimiser, learning rates, weight decay, the SEM
  temperatures, the projector widths;
* method options (only some methods read them): the BYOL predictor, the queues of MoCo and SwAV,
  the contrastive and DINO temperatures, the EMA momenta, the prototypes, the loss weights of
  Barlow Twins and VICReg. A method option given to a method that does not read it is an error,
  never silently ignored; after resolution it holds :func:`unused_value`.
"""

from __future__ import annotations

from typing import Any

from semprobe.errors import SemprobeError

METHODS = ("byol", "mocov2plus", "simclr", "barlowtwins", "vicreg", "swav", "dino")
# Methods with an EMA (momentum) branch: they read base_momentum and final_momentum.
MOMENTUM_METHODS = ("byol", "mocov2plus", "dino")
DATASET_KINDS = ("cifar10", "cifar100", "synthetic", "imagefolder")

_LARS = {"optimizer": "lars"}
# Per-method values (see semprobe.pretrain.config for their sources).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "byol": {
        **_LARS,
        "lr": 1.0,
        "classifier_lr": 0.1,
        "weight_decay": 1e-5,
        "tau_online": 1.0,
        "tau_target": 1.0,
        "proj_hidden_dim": 4096,
        "proj_output_dim": 256,
        "pred_hidden_dim": 4096,
        "base_momentum": 0.99,
        "final_momentum": 1.0,
    },
    "mocov2plus": {
        "optimizer": "sgd",
        "lr": 0.3,
        "classifier_lr": 0.3,
        "weight_decay": 1e-4,
        "tau_online": 1.0,
        "tau_target": 1.0,
        "proj_hidden_dim": 2048,
        "proj_output_dim": 256,
        "queue_size": 32768,
        "temperature": 0.2,
        "base_momentum": 0.99,
        "final_momentum": 0.999,
    },
    "simclr": {
        **_LARS,
        "lr": 0.4,
        "classifier_lr": 0.1,
        "weight_decay": 1e-5,
        "tau_online": 0.17,
        "tau_target": 0.78,
        "proj_hidden_dim": 2048,
        "proj_output_dim": 256,
        "temperature": 0.2,
    },
    "barlowtwins": {
        **_LARS,
        "lr": 0.3,
        "classifier_lr": 0.3,
        "weight_decay": 1e-4,
        "tau_online": 1.0,
        "tau_target": 0.99,
        "proj_hidden_dim": 2048,
        "proj_output_dim": 2048,
        "barlow_lambda": 0.0051,
        "scale_loss": 0.1,
    },
    "vicreg": {
        **_LARS,
        "lr": 0.3,
        "classifier_lr": 0.3,
        "weight_decay": 1e-4,
        "tau_online": 1.0,
        "tau_target": 1.0,
        "proj_hidden_dim": 2048,
        "proj_output_dim": 2048,
        "sim_loss_weight": 25.0,
        "var_loss_weight": 25.0,
        "cov_loss_weight": 1.0,
    },
    "swav": {
        **_LARS,
        "lr": 0.6,
        "classifier_lr": 0.1,
        "weight_decay": 1e-6,
        "tau_online": 0.85,
        "tau_target": 1.5,
        "proj_hidden_dim": 2048,
        "proj_output_dim": 128,
        "temperature": 0.1,
        "queue_size": 3840,
        "num_prototypes": 3000,
        "queue_start_epoch": 50,
        "freeze_prototypes_epochs": 2,
    },
    "dino": {
        **_LARS,
        "lr": 0.3,
        "classifier_lr": 0.1,
        "weight_decay": 1e-6,
        "tau_online": 1.0,
        "tau_target": 1.0,
        "proj_hidden_dim": 2048,
        "proj_output_dim": 256,
        "temperature": 0.1,
        "num_prototypes": 4096,
        "freeze_prototypes_epochs": 1,
        "teacher_temperature": 0.07,
        "warmup_teacher_temperature": 0.04,
        "warmup_teacher_epochs": 50,
        "base_momentum": 0.9995,
        "final_momentum": 1.0,
    },
}
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
    },
}
# CPU-sized method options on synthetic (1,000 images, 5 epochs): queues that fill within an
# epoch, prototypes fewer than the images, schedules that act within the run.
SYNTHETIC_METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "mocov2plus": {"queue_size": 4096},
    "barlowtwins": {"proj_output_dim": 512},
    "vicreg": {"proj_output_dim": 512},
    "swav": {
        "queue_size": 512,
        "num_prototypes": 100,
        "queue_start_epoch": 2,
        "freeze_prototypes_epochs": 1,
    },
    "dino": {"num_prototypes": 256, "warmup_teacher_epochs": 1, "base_momentum": 0.99},
}
# The options every method reads; all others are method options.
COMMON_OPTIONS = frozenset.intersection(*(frozenset(t) for t in METHOD_DEFAULTS.values()))
METHOD_OPTIONS = frozenset().union(*METHOD_DEFAULTS.values()) - COMMON_OPTIONS
# What a method option holds for a method that does not read it (0 for the two integer options
# that existed before the others, as checkpoints written then record).
_UNUSED = {"queue_size": 0, "pred_hidden_dim": 0}


def unused_value(name: str) -> Any:
    """What option ``name`` holds, once resolved, for a method that does not read it."""
    return _UNUSED.get(name)


def methods_using(name: str) -> list[str]:
    """The methods that read option ``name``, in :data:`METHODS` order."""
    return [m for m in METHODS if name in METHOD_DEFAULTS[m]]


def check_method(method: str) -> None:
    """Raise :class:`SemprobeError` unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise SemprobeError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


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
    """The default of option ``name`` for a (method, dataset) pair (after validating both).

    Examples
    --------
    >>> default_for("lr", "swav", "cifar100"), default_for("num_prototypes", "swav", "synthetic")
    (0.6, 100)
    >>> default_for("queue_size", "byol", "cifar100")
    0
    """
    check_method(method)
    synthetic = dataset_kind(dataset) == "synthetic"
    if name in METHOD_OPTIONS and name not in METHOD_DEFAULTS[method]:
        return unused_value(name)
    tables = [DATASET_DEFAULTS["synthetic" if synthetic else "paper"], METHOD_DEFAULTS[method]]
    if synthetic:
        tables.insert(0, SYNTHETIC_METHOD_DEFAULTS.get(method, {}))
    for table in tables:
        if name in table:
            return table[name]
    raise KeyError(name)
