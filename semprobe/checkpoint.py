"""Load trained models from checkpoints: ours, the SEM authors', and plain solo-learn ones.

Three formats are recognised:

``semprobe``
    Written by :func:`save_model` and by ``pretrain/``: a ``torch.save`` dict of tensors and plain
    data with ``semprobe_format``/``semprobe_format_version``, the :class:`ModelSpec` under
    ``semprobe_spec`` and the analysed network's weights under ``state_dict`` with the prefix
    ``encoder.``. Files written by ``pretrain/`` also hold Lightning's training state (optimiser,
    schedulers, loops), which resuming uses and analyses ignore.
``sem-authors``
    The SEM authors' solo-learn fork (github lavoiems/simplicial-embeddings): a Lightning ``.ckpt``
    whose ``state_dict`` has ``backbone.*`` (torchvision ResNet names, ``fc`` removed),
    ``embedder.0.weight`` and ``embedder.1.*``; hyper-parameters come from ``args.json`` beside it
    (``message_size`` = L, ``voc_size`` = V, ``tau_online``, ``tau_target``, ...).
``solo-learn``
    The same layout without an embedder: a baseline, analysed through its backbone features.

Foreign checkpoints come with the CIFAR stem (3x3 convolution, the authors' CIFAR runs) or the
ImageNet stem (7x7 convolution and max-pool: their ImageNet and ImageNet-100 runs, ResNet-50
included), told apart by ``backbone.conv1.weight``; their evaluation normalisation is recorded in
the spec (``authors-cifar`` or ``authors-imagenet``, see :mod:`semprobe.transforms`). A method
whose checkpoint names its weights differently registers a key adapter in :data:`KEY_LAYOUTS`.

Every load is strict (every expected key present with its shape, nothing unexpected under
``backbone.``/``embedder.``), uses ``torch.load(weights_only=True)`` unless the caller passes
``trust=True``, and checks shapes before any model memory is allocated.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from semprobe import __version__
from semprobe.atomic import atomic_path
from semprobe.errors import CheckpointError, SemprobeError
from semprobe.model import ModelSpec, SEMModel

FORMAT_NAME = "semprobe-checkpoint"
FORMAT_VERSION = 1
ENCODER_PREFIX = "encoder."
_FOREIGN_PREFIXES = ("backbone.", "embedder.")
DEFAULT_TAU = 1.0
log = logging.getLogger("semprobe")

# args.json ``method`` -> a function from the checkpoint's state dict to one whose analysed
# weights are named ``backbone.*`` / ``embedder.0.weight`` / ``embedder.1.*``. Methods absent
# from the table (sdbyol, sdmocov2plus, byol, ...) already use those names.
KeyLayout = Callable[[Mapping[str, Tensor]], Mapping[str, Tensor]]
KEY_LAYOUTS: dict[str, KeyLayout] = {}


@dataclass
class LoadedModel:
    """A model read from a checkpoint, with where it came from."""

    model: SEMModel
    spec: ModelSpec
    path: Path
    source_format: str
    meta: dict[str, Any] = field(default_factory=dict)
    ignored_keys: list[str] = field(default_factory=list)


def save_model(
    model: SEMModel, path: str | os.PathLike[str], meta: Mapping[str, Any] | None = None
):
    """Write ``model`` in our format, atomically, loadable with ``weights_only=True``."""
    payload = {
        "semprobe_format": FORMAT_NAME,
        "semprobe_format_version": FORMAT_VERSION,
        "semprobe_spec": model.spec.to_dict(),
        "semprobe_meta": {"created_by": f"semprobe {__version__}", **dict(meta or {})},
        "state_dict": {ENCODER_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _offending_type(message: str) -> str:
    match = re.search(r"(?:Unsupported global|GLOBAL)\s*:?\s*(?:GLOBAL\s+)?([\w.]+)", message)
    if match:
        return match.group(1)
    match = re.search(r"Unsupported operand \d+|unsupported class ([\w.]+)", message)
    return match.group(0) if match else "a non-tensor Python object"


def read_checkpoint(path: str | os.PathLike[str], trust: bool = False) -> Any:
    """``torch.load`` with the refusals and messages the tools promise.

    Parameters
    ----------
    path:
        The checkpoint file.
    trust:
        Allow arbitrary pickled objects (``weights_only=False``). Only for files whose origin the
        user trusts: unpickling can run code.

    Raises
    ------
    CheckpointError
        Missing, empty, truncated or non-PyTorch files, and (without ``trust``) files holding
        pickled objects other than tensors and plain containers, naming the offending type.
    """
    file = check_checkpoint_file(path)
    if file.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {file} is empty")
    kwargs: dict[str, Any] = {"map_location": "cpu", "weights_only": not trust}
    try:
        try:
            # mmap: the weights stay on disk until used, so a large file costs no memory twice.
            return torch.load(file, mmap=True, **kwargs)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(file, **kwargs)  # legacy (non-zip) serialisation
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text or "weights_only" in text:
            raise CheckpointError(
                f"checkpoint {file} contains a pickled object ({_offending_type(text)}) that a "
                "weights-only load refuses; pass --trust-checkpoint only if you trust where the "
                "file came from"
            ) from None
        raise CheckpointError(f"checkpoint {file} is not a PyTorch checkpoint ({text})") from None
    except Exception as exc:  # torch raises many types on damaged files (KeyError, EOFError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {file} is truncated or not a PyTorch checkpoint ({first})"
        ) from None


def check_checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """``path`` if it is a file; else a one-line error (a cheap check, made before any work).

    Raises
    ------
    CheckpointError
        ``checkpoint PATH does not exist`` or ``checkpoint PATH is a directory, not a file``.
    """
    file = Path(path)
    if file.is_dir():
        raise CheckpointError(f"checkpoint {file} is a directory, not a file")
    if not file.is_file():
        raise CheckpointError(f"checkpoint {file} does not exist")
    return file


def _find(args: Mapping[str, Any], *names: str) -> Any:
    """First value under any of ``names``, searching nested dicts (flat and hydra-style args)."""
    for name in names:
        if name in args and not isinstance(args[name], Mapping):
            return args[name]
    for value in args.values():
        if isinstance(value, Mapping):
            found = _find(value, *names)
            if found is not None:
                return found
    for name in names:  # e.g. {"backbone": {"name": "resnet18"}}
        if isinstance(args.get(name), Mapping) and "name" in args[name]:
            return args[name]["name"]
    return None


def _read_args_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def _infer_backbone(weights: Mapping[str, Tensor]) -> tuple[str, bool]:
    conv1 = weights.get("backbone.conv1.weight")
    if conv1 is None:
        if any(k.startswith("backbone.features.") for k in weights):
            return "small_cnn", True
        raise CheckpointError(
            "cannot tell the backbone: no backbone.conv1.weight in the state dict"
        )
    cifar_stem = tuple(conv1.shape[-2:]) == (3, 3)
    bottleneck = "backbone.layer1.0.conv3.weight" in weights
    return ("resnet50" if bottleneck else "resnet18"), cifar_stem


def _foreign_spec(
    weights: Mapping[str, Tensor], args: dict[str, Any] | None, args_path: Path
) -> ModelSpec:
    """Build the spec of a solo-learn / SEM-authors checkpoint from its weights and args.json."""
    backbone, cifar_stem = _infer_backbone(weights)
    args = args or {}
    named = _find(args, "backbone")
    if isinstance(named, str) and named != backbone:
        raise CheckpointError(
            f"{args_path} says backbone {named!r} but the weights are a {backbone}"
        )
    method = str(_find(args, "method") or "unknown")
    dataset = str(_find(args, "dataset") or "unknown")
    _check_stem_against_dataset(cifar_stem, dataset, args_path)
    # Their evaluation constants: main_linear's for CIFAR, solo-learn's for ImageNet.
    normalize = "authors-cifar" if cifar_stem else "authors-imagenet"
    embed = weights.get("embedder.0.weight")
    if embed is None:
        return ModelSpec(backbone, cifar_stem, method=method, dataset=dataset, normalize=normalize)
    num_simplices, vocab = _sem_shape(args, args_path, embed)
    tau_online = _tau(args, "tau_online", DEFAULT_TAU, args_path)
    tau_target = _tau(args, "tau_target", tau_online, args_path, warn=False)
    return ModelSpec(
        backbone,
        cifar_stem,
        num_simplices,
        vocab,
        tau_online,
        tau_target,
        method,
        dataset,
        normalize,
    )


def _sem_shape(args: dict[str, Any], args_path: Path, embed: Tensor) -> tuple[int, int]:
    """L and V from args.json, checked against the embedder's rows."""
    if not args:
        raise CheckpointError(
            f"the checkpoint has a SEM embedder but no {args_path} beside it to give "
            "message_size (L) and voc_size (V)"
        )
    if embed.ndim != 2:
        raise CheckpointError(
            f"embedder.0.weight has shape {tuple(embed.shape)}: a {embed.ndim}-D embedder (e.g. "
            "the authors' block-diagonal partsdbyol) is not supported, only their linear one "
            "(L*V x features)"
        )
    num_simplices, vocab = _find(args, "message_size"), _find(args, "voc_size")
    if not isinstance(num_simplices, int) or not isinstance(vocab, int):
        raise CheckpointError(f"{args_path} lacks integer message_size and voc_size")
    if num_simplices * vocab != embed.shape[0]:
        raise CheckpointError(
            f"{args_path} says L*V = {num_simplices}*{vocab} = {num_simplices * vocab} but "
            f"embedder.0.weight has {embed.shape[0]} rows"
        )
    return num_simplices, vocab


def _tau(
    args: dict[str, Any], name: str, default: float, args_path: Path, warn: bool = True
) -> float:
    value = _find(args, name)
    if value is None:
        if warn:
            log.warning(
                "warning: %s has no %s: the model's tau is taken as %g (analyses that default "
                "to the model's tau use it; pass --tau to choose)",
                args_path,
                name,
                default,
            )
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CheckpointError(f"{args_path}: {name} must be a number, got {value!r}") from None


def _check_stem_against_dataset(cifar_stem: bool, dataset: str, args_path: Path) -> None:
    """The authors build the CIFAR stem exactly for cifar10/cifar100: warn when that disagrees."""
    cifar_data = dataset in ("cifar10", "cifar100")
    if dataset == "unknown" or cifar_stem == cifar_data:
        return
    stem = "CIFAR stem (3x3 convolution)" if cifar_stem else "ImageNet stem (7x7 convolution)"
    log.warning(
        "warning: the weights have the %s but %s says dataset %r, for which the SEM authors' "
        "code builds the %s stem; the weights decide",
        stem,
        args_path,
        dataset,
        "CIFAR" if cifar_data else "ImageNet",
    )


def _check_against(spec: ModelSpec, weights: Mapping[str, Tensor], source: str) -> None:
    """Strict key and shape check, on a model built on the meta device (allocates nothing)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in SEMModel(spec).state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_names(unexpected)}")
    for key in sorted(set(expected) & set(weights)):
        got = tuple(weights[key].shape)
        if got != expected[key]:
            problems.append(f"{key} has shape {list(got)}, expected {list(expected[key])}")
            break
    if problems:
        raise CheckpointError(f"{source} does not fit a {_describe(spec)}: " + "; ".join(problems))
    for key, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{source}: {key} contains NaN or infinite values")


def _names(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _describe(spec: ModelSpec) -> str:
    sem = f"SEM L={spec.num_simplices} V={spec.vocab}" if spec.has_sem else "no SEM"
    return f"{spec.backbone} ({sem})"


def model_from_weights(spec: ModelSpec, weights: Mapping[str, Tensor], source: str) -> SEMModel:
    """Check ``weights`` strictly against ``spec`` and return the model holding them (float32)."""
    _check_against(spec, weights, source)
    with torch.device("meta"):
        model = SEMModel(spec)
    model.load_state_dict(dict(weights), strict=True, assign=True)
    return model.float().eval()


def load_model(
    path: str | os.PathLike[str],
    trust: bool = False,
    args_json: str | os.PathLike[str] | None = None,
) -> LoadedModel:
    """Load a model from any supported checkpoint format (see the module docstring).

    Parameters
    ----------
    path:
        The checkpoint.
    trust:
        Allow pickled objects beyond tensors and plain data (see :func:`read_checkpoint`).
    args_json:
        Hyper-parameters of a foreign checkpoint; default ``args.json`` beside it.

    Returns
    -------
    LoadedModel
        The model in eval mode on the CPU, its spec, the format name and ignored keys.
    """
    file = Path(path)
    raw = read_checkpoint(file, trust=trust)
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"checkpoint {file} holds a {type(raw).__name__}, not a dict")
    if raw.get("semprobe_format") == FORMAT_NAME:
        version = raw.get("semprobe_format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {file} has format version {version!r}; this semprobe reads up to "
                f"{FORMAT_VERSION}: upgrade semprobe"
            )
        try:
            spec = ModelSpec.from_dict(dict(raw["semprobe_spec"]))
        except (KeyError, TypeError, SemprobeError) as exc:
            raise CheckpointError(f"checkpoint {file} has a bad model spec: {exc}") from None
        state = raw.get("state_dict")
        if not isinstance(state, Mapping):
            raise CheckpointError(f"checkpoint {file} has no state_dict")
        weights = {
            k[len(ENCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)
        }
        ignored = sorted(k for k in state if not k.startswith(ENCODER_PREFIX))
        model = model_from_weights(spec, weights, f"checkpoint {file}")
        meta = dict(raw.get("semprobe_meta") or {})
        return LoadedModel(model, spec, file, "semprobe", meta, ignored)

    state = raw.get("state_dict", raw)
    if not isinstance(state, Mapping) or not any(
        isinstance(k, str) and k.startswith("backbone.") for k in state
    ):
        raise CheckpointError(
            f"checkpoint {file} is neither a semprobe checkpoint nor a solo-learn/SEM one "
            "(no backbone.* keys)"
        )
    return _load_foreign(file, state, Path(args_json) if args_json else file.parent / "args.json")


def _load_foreign(file: Path, state: Mapping[str, Any], args_path: Path) -> LoadedModel:
    """A solo-learn or SEM-authors state dict, with its args.json."""
    args = _read_args_json(args_path) if args_path.exists() else None
    method = str(_find(args or {}, "method") or "")
    state = KEY_LAYOUTS.get(method, lambda weights: weights)(state)
    weights = {k: v for k, v in state.items() if k.startswith(_FOREIGN_PREFIXES)}
    ignored = sorted(k for k in state if not k.startswith(_FOREIGN_PREFIXES))
    try:
        spec = _foreign_spec(weights, args, args_path)
    except CheckpointError:
        raise
    except SemprobeError as exc:
        raise CheckpointError(f"{args_path}: {exc}") from None
    model = model_from_weights(spec, weights, f"checkpoint {file}")
    source = "sem-authors" if spec.has_sem else "solo-learn"
    return LoadedModel(model, spec, file, source, {"args": args or {}}, ignored)


def random_init_model(spec: ModelSpec, seed: int = 0) -> SEMModel:
    """The same architecture at a seeded random initialisation: the untrained reference."""
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = SEMModel(spec)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()
