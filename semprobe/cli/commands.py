"""The handlers of the ``semprobe`` sub-commands: each turns parsed options into library calls.

Heavy modules are imported inside the handlers, so building the parser costs nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from semprobe.cli import report

if TYPE_CHECKING:
    from semprobe.analysis import RelevanceSettings
    from semprobe.studies import Study


def extract(args: argparse.Namespace) -> int:
    """``semprobe extract``: load a checkpoint, cache the features of each split."""
    from semprobe.cli.options import extraction_options
    from semprobe.extraction import distributed_session, features, load

    options = extraction_options(args)
    with distributed_session() as leader:  # under torchrun, ranks > 0 extract shards here
        if not leader:
            return 0
        model = load(args.checkpoint, options).model
        for split in args.splits:
            fs = features(model, options, split)
            logits = "none" if fs.logits is None else "x".join(map(str, fs.logits.shape))
            print(
                f"{split}: {len(fs.labels)} images, features {fs.features.shape[1]}, "
                f"SEM logits {logits} -> {fs.directory}"
            )
    return 0


def wordnet_setup(args: argparse.Namespace) -> int:
    """``semprobe wordnet setup``."""
    from semprobe.wordnet import setup_wordnet

    target = Path(args.target) if args.target else None
    print(setup_wordnet(target, Path(args.source), allow_download=not args.no_download))
    return 0


def study_from_args(
    args: argparse.Namespace, analyses: list[str], relevance: RelevanceSettings | None = None
) -> Study:
    """A :class:`~semprobe.studies.Study` of the command line's checkpoints."""
    from semprobe.analysis import RelevanceSettings
    from semprobe.cli.options import extraction_options
    from semprobe.rundir import model_name
    from semprobe.studies import ProbeSettings, Study

    taken: set[str] = set()
    names = {model_name(ckpt, taken): Path(ckpt) for ckpt in args.checkpoints}
    probe = ProbeSettings()
    if "tau_sweep" in analyses:
        probe = ProbeSettings(l1=args.l1, l2=args.l2, epochs=args.epochs, seed=args.seed)
    return Study(
        checkpoints=names,
        dataset=args.dataset,
        taus=getattr(args, "taus", [1.0]),
        analyses=analyses,
        options=extraction_options(args),
        probe=probe,
        relevance=relevance or RelevanceSettings(),
    )


def relevance(args: argparse.Namespace) -> int:
    """``semprobe relevance``."""
    from semprobe.cli.options import relevance_settings
    from semprobe.extraction import distributed_session

    study = study_from_args(args, ["relevance"], relevance_settings(args))
    with distributed_session() as leader:  # under torchrun, ranks > 0 extract shards here
        if not leader:
            return 0
        result = study.run(args.out)
    report.print_relevance_report(
        result.relevance, result.relevance_models, args.out, result.relevance_by_superclasses
    )
    return 0


def entropy(args: argparse.Namespace) -> int:
    """``semprobe entropy``."""
    result = study_from_args(args, ["entropy"]).run(args.out)
    for name, entropy_report in result.entropy.items():
        print(f"{name}:")
        report.print_table(entropy_report.summary, index=False)
    for note in report.result_notes(result):
        print(f"note: {note}")
    print(f"\nrun directory: {args.out}")
    return 0


def tau_sweep(args: argparse.Namespace) -> int:
    """``semprobe tau-sweep``."""
    result = study_from_args(args, ["tau_sweep"]).run(args.out)
    report.print_table(result.sweep, index=False)
    print(f"\nrun directory: {args.out}")
    return 0


def study(args: argparse.Namespace) -> int:
    """``semprobe study FILE``: pretrain what the file asks for, then analyse."""
    from semprobe.pretrain.study_trainer import StudyTrainer
    from semprobe.studies import accuracy_table, load_seeded_study, load_study

    seeded = load_seeded_study(args.study_file, trainer=StudyTrainer(), seeds=args.seeds)
    if seeded is not None:  # seeds = [...]: one study per seed, then tables across them
        from semprobe.cli.intervals import print_seed_report

        print_seed_report(seeded.run(args.out), report.print_table)
        return 0
    loaded, out = load_study(args.study_file, trainer=StudyTrainer())
    result = loaded.run(args.out or out)
    if len(result.sweep):
        print("linear-probe accuracy (test top-1) per representation:")
        report.print_table(accuracy_table(result.sweep), na_rep="-")
    if result.protocols:
        from semprobe.cli.evaluate import print_protocol_tables

        print_protocol_tables(result)
    if len(result.relevance):
        report.print_relevance_report(
            result.relevance,
            result.relevance_models,
            result.out,
            result.relevance_by_superclasses,
        )
    else:
        print(f"\nrun directory: {result.out}")
    return 0


def dashboard(args: argparse.Namespace) -> int:
    """``semprobe dashboard RUN_DIR...``: serve the Streamlit app until interrupted."""
    from semprobe.app.launch import main

    return main(args.run_dirs, port=args.port, headless=not args.browser, address=args.address)


def html_report(args: argparse.Namespace) -> int:
    """``semprobe report RUN --out FILE``: the run's figures and tables as one HTML page."""
    from semprobe.run_report import write_report

    print(f"report: {write_report(args.run_dir, args.report_out)}")
    return 0


def pretrain(args: argparse.Namespace) -> int:
    """``semprobe pretrain``: train with the merged defaults, config file and options."""
    from semprobe.cli.options import pretrain_config

    config = pretrain_config(args)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from semprobe.pretrain.train import run

    final = run(config)
    if getattr(rank_zero_only, "rank", 0) == 0:  # under DDP every process returns here
        print(f"final checkpoint: {final}")
    return 0
