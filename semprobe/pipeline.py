"""From a checkpoint path and CLI options to cached features: the glue every command shares."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from semprobe.checkpoint import LoadedModel, load_model, random_init_model
from semprobe.data import LabeledImages, eval_transform, open_dataset
from semprobe.features import FeatureSet, extract_features
from semprobe.model import SEMModel


@dataclass(frozen=True)
class ExtractionOptions:
    """Where and how features are extracted (the flat CLI options, gathered once)."""

    dataset: str = "synthetic"
    data_root: str | None = None
    download: bool = True
    cache_dir: Path = Path.home() / ".cache" / "semprobe" / "features"
    dtype: str = "float32"
    batch_size: int = 256
    workers: int = 0
    device: str = "cpu"
    trust_checkpoint: bool = False
    args_json: str | None = None
    progress: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ExtractionOptions:
        from semprobe.cli import default_cache_dir

        return cls(
            dataset=args.dataset,
            data_root=args.data_root,
            download=not args.no_download,
            cache_dir=Path(args.cache_dir) if args.cache_dir else default_cache_dir(),
            dtype=args.dtype,
            batch_size=args.batch_size,
            workers=args.workers,
            device=args.device,
            trust_checkpoint=args.trust_checkpoint,
            args_json=args.args_json,
            progress=not args.quiet,
        )


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


def extract_for_checkpoint(
    checkpoint: str | Path, args: argparse.Namespace, split: str
) -> FeatureSet:
    """``semprobe extract``: load, then extract one split."""
    options = ExtractionOptions.from_args(args)
    return features(load(checkpoint, options).model, options, split)
