"""From parsed arguments to the library's settings objects (one function per object)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semprobe.analysis import RelevanceSettings
    from semprobe.extraction import ExtractionOptions
    from semprobe.pretrain.config import PretrainConfig


def extraction_options(args: argparse.Namespace) -> ExtractionOptions:
    """The extraction options of a parsed command line."""
    from semprobe.extraction import ExtractionOptions, default_cache_dir

    return ExtractionOptions(
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
        image_size=args.image_size,
        resize=args.resize,
        normalize=args.normalize,
        skip_unreadable=args.skip_unreadable,
        verbose=True,
    )


def relevance_settings(args: argparse.Namespace) -> RelevanceSettings:
    """The relevance settings of a parsed command line."""
    from semprobe.analysis import RelevanceSettings

    return RelevanceSettings(
        superclasses=args.superclasses,
        representation=args.representation,
        tau=args.tau,
        k=args.k,
        k_max=args.k_max,
        rule=args.rule,
        multiplicity=args.multiplicity,
        l1=args.l1,
        l2=args.l2,
        epochs=args.epochs,
        permutations=args.permutations,
        seed=args.seed,
        reference=args.reference,
        concepts=not args.no_concepts,
        simplex_copy=not args.no_simplex_copy,
        synsets=getattr(args, "synsets", None),
        bootstrap=getattr(args, "bootstrap", None),
        confidence=getattr(args, "confidence", 0.95),
    )


def pretrain_config(args: argparse.Namespace) -> PretrainConfig:
    """Merge the config file (if any) and the options given on the command line."""
    from semprobe.pretrain.config import OPTION_ALIASES, PretrainConfig, load_config_file

    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values |= load_config_file(args.config)
    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    given = {
        OPTION_ALIASES.get(k, k): v
        for k, v in vars(args).items()
        if v is not None and OPTION_ALIASES.get(k, k) in fields
    }
    values |= given
    if "online_taus" in values:
        values["online_taus"] = tuple(values["online_taus"])
    return PretrainConfig.from_dict(values).resolved()
