"""From a checkpoint path and extraction options to cached features: what every analysis shares.

:func:`features` opens a split, chooses the evaluation transform for the model
(:func:`semprobe.transforms.choose_transform`), prints what it chose (the model's L, V, tau and
stem, the input size and normalisation) with a warning when the input size does not suit the
stem, and extracts into the cache (or reads it). Under ``torchrun`` a command that runs inside
:func:`distributed_session` shards every extraction over the processes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from semprobe import distributed
from semprobe.checkpoint import LoadedModel, load_model, random_init_model
from semprobe.errors import SemprobeError
from semprobe.features import FeatureSet, extract_features
from semprobe.images import LabeledImages
from semprobe.model import ModelSpec, SEMModel
from semprobe.readable import without_unreadable
from semprobe.shards import serve_extract
from semprobe.transforms import (
    EvalTransform,
    choose_transform,
    describe_stem,
    parse_normalize,
    parse_resize,
    stem_mismatch,
    warn,
)


def default_cache_dir() -> Path:
    """``~/.cache/semprobe/features``: where features are cached unless told otherwise."""
    return Path.home() / ".cache" / "semprobe" / "features"


@dataclass(frozen=True)
class ExtractionOptions:
    """Where and how features are extracted (the command line's options, gathered once).

    ``image_size``, ``resize`` (pixels, ``"none"`` or 0 for no resize) and ``normalize`` (a
    preset name or ``MEAN,STD``) override the transform chosen for each model (see
    :mod:`semprobe.transforms`); ``skip_unreadable`` leaves undecodable images out instead of
    stopping (see :mod:`semprobe.readable`); ``verbose`` prints the model and transform, and says
    when another process holds a cache entry (the command line sets it; warnings always show).

    Examples
    --------
    >>> ExtractionOptions(resize="none").resize
    0
    """

    dataset: str = "synthetic"
    data_root: str | None = None
    download: bool = True
    cache_dir: Path = field(default_factory=default_cache_dir)
    dtype: str = "float32"
    batch_size: int = 256
    workers: int = 0
    device: str = "cpu"
    trust_checkpoint: bool = False
    args_json: str | None = None
    progress: bool = True
    image_size: int | None = None
    resize: int | str | None = None
    normalize: str | None = None
    skip_unreadable: bool = False
    verbose: bool = False

    def __post_init__(self) -> None:
        # Cheap checks, before any checkpoint or dataset is touched.
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        object.__setattr__(self, "resize", parse_resize(self.resize))
        if self.image_size is not None and not _is_int(self.image_size, 1):
            raise SemprobeError(f"--image-size must be an integer >= 1, got {self.image_size!r}")
        if self.normalize is not None:
            parse_normalize(self.normalize)
        if not _is_int(self.batch_size, 1):
            raise SemprobeError(f"batch size must be an integer >= 1, got {self.batch_size!r}")
        if not _is_int(self.workers, 0):
            raise SemprobeError(f"--workers must be an integer >= 0, got {self.workers!r}")


def _is_int(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


# The lines each command (its options object) has printed: a command extracting train and test
# of a model and of its random-init twin describes each model and transform once.
_SAID: weakref.WeakKeyDictionary[ExtractionOptions, set[str]] = weakref.WeakKeyDictionary()


def load(checkpoint: str | Path, options: ExtractionOptions) -> LoadedModel:
    """Load a checkpoint with the trust and args.json options."""
    return load_model(checkpoint, trust=options.trust_checkpoint, args_json=options.args_json)


def _say(options: ExtractionOptions) -> Callable[[str], None] | None:
    return _print if options.verbose else None


def _print(line: str) -> None:
    print(line, flush=True)  # at once: a run waiting on a lock says so while it waits


def open_split(
    options: ExtractionOptions, split: str, transform: EvalTransform | None = None
) -> LabeledImages:
    """Open one split of the options' dataset (without unreadable images if asked)."""
    from semprobe.data import open_dataset

    images = open_dataset(
        options.dataset, split, options.data_root, options.download, transform=transform
    )
    if options.skip_unreadable:
        images = without_unreadable(
            images, options.cache_dir, options.workers, options.progress, _say(options)
        )
    return images


def transform_for(
    spec: ModelSpec, options: ExtractionOptions, images: LabeledImages
) -> EvalTransform:
    """The evaluation transform of a model with ``spec`` on ``images`` under ``options``."""
    return choose_transform(
        spec,
        images.native_size,
        options.image_size,
        parse_resize(options.resize),
        options.normalize,
    )


def describe_model(spec: ModelSpec) -> str:
    """The model in one line: backbone and stem, L, V and tau, how it was trained."""
    sem = (
        f"SEM L={spec.num_simplices} V={spec.vocab} tau={spec.tau:g}"
        if spec.has_sem
        else "no SEM embedder (backbone features)"
    )
    return f"model: {describe_stem(spec)}; {sem}; trained by {spec.method} on {spec.dataset}"


def _announce(
    spec: ModelSpec, transform: EvalTransform, images: LabeledImages, options: ExtractionOptions
) -> None:
    said = _SAID.setdefault(options, set())
    lines = [describe_model(spec), f"input {images.split}: {transform.describe()}"]
    if options.verbose:
        for line in lines:
            if line not in said:
                said.add(line)
                print(line)
    size = transform.image_size or images.native_size
    mismatch = stem_mismatch(spec, size) if size else None
    if mismatch and mismatch not in said:
        said.add(mismatch)
        warn(mismatch)


def features(model: SEMModel, options: ExtractionOptions, split: str) -> FeatureSet:
    """Features of ``model`` on one split, from the cache when present."""
    images = open_split(options, split)
    transform = transform_for(model.spec, options, images)
    images.transform = transform
    _announce(model.spec, transform, images, options)
    return extract_features(
        model,
        images,
        options.cache_dir,
        dtype=options.dtype,
        batch_size=options.batch_size,
        num_workers=options.workers,
        device=options.device,
        progress=options.progress,
        say=_say(options),
    )


def distributed_session() -> distributed.session:
    """``with distributed_session() as leader:`` shards the block's extractions under torchrun.

    Outside torchrun ``leader`` is True and nothing changes; under it, rank 0 runs the block and
    the other ranks extract their shards of whatever it extracts, then get False.
    """
    return distributed.session({"extract": serve_extract})


def reference_model(loaded: LoadedModel, seed: int = 0) -> SEMModel:
    """The same architecture (same L, V) at a seeded random initialisation."""
    return random_init_model(loaded.spec, seed)


__all__ = [
    "ExtractionOptions",
    "default_cache_dir",
    "describe_model",
    "distributed_session",
    "features",
    "load",
    "open_split",
    "reference_model",
    "transform_for",
]
