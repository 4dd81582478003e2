"""From a checkpoint path and extraction options to cached features: what every analysis shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from semprobe.checkpoint import LoadedModel, load_model, random_init_model
from semprobe.data import LabeledImages, eval_transform, open_dataset
from semprobe.features import FeatureSet, extract_features
from semprobe.model import SEMModel


def default_cache_dir() -> Path:
    """``~/.cache/semprobe/features``: where features are cached unless told otherwise."""
    return Path.home() / ".cache" / "semprobe" / "features"


@dataclass(frozen=True)
class ExtractionOptions:
    """Where and how features are extracted (the command line's options, gathered once)."""

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


def load(checkpoint: str | Path, options: ExtractionOptions) -> LoadedModel:
    """Load a checkpoint with the trust and args.json options."""
    return load_model(checkpoint, trust=options.trust_checkpoint, args_json=options.args_json)


def open_split(options: ExtractionOptions, split: str) -> LabeledImages:
    """Open one split of the options' dataset with the extraction transform."""
    return open_dataset(
        options.dataset, split, options.data_root, options.download, transform=eval_transform()
    )


def features(model: SEMModel, options: ExtractionOptions, split: str) -> FeatureSet:
    """Features of ``model`` on one split, from the cache when present."""
    return extract_features(
        model,
        open_split(options, split),
        options.cache_dir,
        dtype=options.dtype,
        batch_size=options.batch_size,
        num_workers=options.workers,
        device=options.device,
        progress=options.progress,
    )


def reference_model(loaded: LoadedModel, seed: int = 0) -> SEMModel:
    """The same architecture (same L, V) at a seeded random initialisation."""
    return random_init_model(loaded.spec, seed)
