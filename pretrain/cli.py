"""``semprobe pretrain``: flat options, an optional TOML/YAML config file, one-line errors.

Precedence: per-(method, dataset) defaults < ``--config FILE`` < options on the command line. The
config file holds flat keys named like the options (``num-simplices = 64`` or
``num_simplices: 64``); an unknown key is an error that names it.

This module imports neither torch nor Lightning, so registering the sub-command costs nothing;
they are loaded when the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semprobe.pretrain.config import (
    ADAMW_CLASSIFIER_LR,
    BACKBONES,
    DATASET_DEFAULTS,
    METHOD_DEFAULTS,
    METHODS,
    OPTIMIZERS,
    PRECISIONS,
    PretrainConfig,
)
from semprobe.cli import run_handler
from semprobe.errors import SemprobeError

# Options whose command-line spelling differs from the config field.
_DESTS = {"proj_dim": "proj_output_dim"}


def _default(name: str) -> str:
    """Help text for an option whose default depends on the method and/or the dataset."""
    paper, synthetic = DATASET_DEFAULTS["paper"], DATASET_DEFAULTS["synthetic"]
    if name in METHOD_DEFAULTS["byol"] and name not in paper:
        by_method = ", ".join(f"{m} {METHOD_DEFAULTS[m][name]}" for m in METHODS)
        text = f"default: {by_method}"
    else:
        text = f"default: {paper[name]}"
    if name in synthetic and f" {synthetic[name]}" not in text:
        text += f"; {synthetic[name]} on synthetic"
    return f"({text})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every pre-training option; each defaults to None so that the config file can fill it."""
    d = PretrainConfig()
    add = parser.add_argument
    g = parser.add_argument_group("method and model")
    g.add_argument("--method", help=f"{' or '.join(METHODS)} (default: {d.method})")
    g.add_argument(
        "--sem",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with or without the SEM layer (default: with)",
    )
    g.add_argument("--backbone", help=f"{', '.join(BACKBONES)} {_default('backbone')}")
    g.add_argument(
        "--cifar-stem",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="3x3 stride-1 ResNet stem for 32x32 images (default: on)",
    )
    g.add_argument("--num-simplices", type=int, metavar="L", help=f"L {_default('num_simplices')}")
    g.add_argument("--vocab", type=int, metavar="V", help=f"V {_default('vocab')}")
    g.add_argument("--tau-online", type=float, help=f"online SEM tau (default: {d.tau_online})")
    g.add_argument("--tau-target", type=float, help=f"target SEM tau (default: {d.tau_target})")
    g.add_argument(
        "--online-taus",
        type=float,
        nargs="+",
        metavar="TAU",
        help="temperatures of the online SEM classifiers (default: 0.01 0.1 1)",
    )
    g.add_argument(
        "--proj-hidden-dim", type=int, help=f"projector hidden width {_default('proj_hidden_dim')}"
    )
    g.add_argument(
        "--proj-dim", type=int, help=f"projector output width (default: {d.proj_output_dim})"
    )
    g.add_argument(
        "--pred-hidden-dim",
        type=int,
        help="BYOL predictor hidden width (default: 4096; 512 on synthetic)",
    )
    g.add_argument(
        "--queue-size",
        type=int,
        help="MoCo keys per queue, a multiple of the total batch "
        "(default: 32768; 4096 on synthetic)",
    )
    g.add_argument(
        "--temperature", type=float, help=f"MoCo InfoNCE temperature (default: {d.temperature})"
    )

    g = parser.add_argument_group("data")
    g.add_argument(
        "--dataset",
        help="cifar10, cifar100, imagefolder:PATH or synthetic[:train=N,test=M,seed=S] "
        f"(default: {d.dataset})",
    )
    g.add_argument("--data-root", help="where torchvision datasets live")
    g.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        default=None,
        help="fail instead of downloading a missing dataset",
    )
    g.add_argument("--image-size", type=int, help=f"crop size (default: {d.image_size})")
    g.add_argument("--workers", type=int, help=f"DataLoader workers {_default('workers')}")
    g.add_argument(
        "--threads",
        type=int,
        help="CPU threads for PyTorch's operators; 1 is fastest on a busy machine "
        "(default: 0, PyTorch's choice)",
    )

    g = parser.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help=_default("epochs"))
    g.add_argument("--max-steps", type=int, help="stop after this many steps (default: -1, none)")
    g.add_argument("--batch-size", type=int, help=f"per device {_default('batch_size')}")
    g.add_argument("--optimizer", help=f"{', '.join(OPTIMIZERS)} {_default('optimizer')}")
    g.add_argument(
        "--lr",
        type=float,
        help=f"learning rate for a total batch of 256, scaled linearly {_default('lr')}",
    )
    g.add_argument(
        "--classifier-lr",
        type=float,
        help=f"online classifiers {_default('classifier_lr')[:-1]}; {ADAMW_CLASSIFIER_LR:g} with "
        "adamw)",
    )
    g.add_argument("--weight-decay", type=float, help=_default("weight_decay"))
    g.add_argument("--lars-eta", type=float, help=f"LARS trust coefficient (default: {d.lars_eta})")
    g.add_argument("--warmup-epochs", type=int, help=_default("warmup_epochs"))
    g.add_argument(
        "--base-momentum", type=float, help=f"initial EMA momentum (default: {d.base_momentum})"
    )
    g.add_argument(
        "--final-momentum", type=float, help=f"final EMA momentum {_default('final_momentum')}"
    )
    g.add_argument("--grad-clip", type=float, help="clip the gradient norm (default: 0, off)")
    g.add_argument("--seed", type=int, help=f"(default: {d.seed})")
    g.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic algorithms: bit-identical reruns and resumes on one CPU/GPU",
    )

    g = parser.add_argument_group("hardware")
    g.add_argument("--precision", help=f"{', '.join(PRECISIONS)} (default: {d.precision})")
    g.add_argument("--accelerator", help="cpu, gpu, auto, ... (default: auto)")
    g.add_argument("--devices", help="auto, N or a list like 0,1 (default: auto)")
    g.add_argument("--strategy", help="auto (ddp for several devices), ddp, ... (default: auto)")
    g.add_argument("--num-nodes", type=int, help=f"(default: {d.num_nodes})")
    g.add_argument(
        "--sync-batchnorm",
        action="store_true",
        default=None,
        help="synchronise batch-norm statistics across processes",
    )

    g = parser.add_argument_group("output")
    g.add_argument("--out", help=f"output directory (default: {d.out})")
    g.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help=f"epochs between checkpoints {_default('checkpoint_every')}",
    )
    g.add_argument(
        "--keep-all-checkpoints",
        action="store_true",
        default=None,
        help="keep every periodic checkpoint, not only the latest",
    )
    g.add_argument("--resume", metavar="PATH", help="continue from this checkpoint")
    g.add_argument(
        "--log-every", type=int, help=f"steps between logged metrics (default: {d.log_every})"
    )
    g.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=None,
        help="no progress bar",
    )
    add("--config", metavar="FILE", help="TOML or YAML file of options (flat keys)")


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


def _toml_module() -> Any:
    """``tomllib`` (Python 3.11+) or its backport ``tomli``."""
    import importlib

    for name in ("tomllib", "tomli"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise SemprobeError("reading TOML needs Python 3.11 or the tomli package; use a YAML file")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a flat TOML or YAML file of options; keys may use ``-`` or ``_``.

    Raises
    ------
    SemprobeError
        Missing or unparsable file, a non-flat layout, unknown keys (named), ill-typed values.
    """
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise SemprobeError(f"cannot read config file {file}: {exc.strerror or exc}") from None
    suffix = file.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = _toml_module().loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise SemprobeError(f"config file {file} must end in .toml, .yaml or .yml")
    except SemprobeError:
        raise
    except Exception as exc:  # tomllib.TOMLDecodeError, yaml.YAMLError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SemprobeError(f"cannot parse config file {file}: {first}") from None
    if not isinstance(data, dict):
        raise SemprobeError(f"config file {file} must hold a table of options")
    values = {str(k).replace("-", "_"): v for k, v in data.items()}
    values = {_DESTS.get(k, k): v for k, v in values.items()}
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


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    """Merge the config file (if any) and the options given on the command line."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values |= load_config_file(args.config)
    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    given = {
        _DESTS.get(k, k): v
        for k, v in vars(args).items()
        if v is not None and _DESTS.get(k, k) in fields
    }
    values |= given
    if "online_taus" in values:
        values["online_taus"] = tuple(values["online_taus"])
    return PretrainConfig.from_dict(values).resolved()


def handle(args: argparse.Namespace) -> int:
    """Run the ``pretrain`` sub-command; user errors raise :class:`SemprobeError`."""
    config = config_from_args(args)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from semprobe.pretrain.train import run

    final = run(config)
    if getattr(rank_zero_only, "rank", 0) == 0:  # under DDP every process returns here
        print(f"final checkpoint: {final}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` sub-command to semprobe's command line."""
    parser = subparsers.add_parser(
        "pretrain",
        help="pre-train a BYOL / MoCo v2+ model, with or without SEM",
        description="Pre-train BYOL or MoCo v2+ with or without the SEM layer (Lavoie et al., "
        "ICLR 2023). Defaults reproduce the authors' CIFAR-100 ResNet-18 runs.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=handle)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pretrain [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pretrain",
        description="Pre-train BYOL or MoCo v2+ with or without the SEM layer.",
    )
    add_arguments(parser)
    return run_handler("pretrain", handle, parser.parse_args(argv))
