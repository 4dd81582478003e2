"""The handlers of ``semprobe knn``, ``linear-grid``, ``robustness`` and ``transfer``.

Each turns its options into settings (checked before any checkpoint is read), runs the protocol
of :mod:`semprobe.protocols.evaluate` and prints the paper-layout table.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semprobe.protocols import ProtocolRun
    from semprobe.studies import StudyResult


def _strengths(args: argparse.Namespace) -> tuple:
    from semprobe.protocols import strengths_from

    return strengths_from(args.l1 or (), args.l2 or ())


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    from semprobe.protocols.robustness import parse_pair

    return [parse_pair(item, what) for item in items]


def _finish(result: ProtocolRun) -> int:
    print(result.report.markdown)
    print(f"run directory: {result.out}")
    return 0


def knn(args: argparse.Namespace) -> int:
    """``semprobe knn``."""
    from semprobe.cli.options import extraction_options
    from semprobe.protocols import KNNSettings, run_knn

    settings = KNNSettings(
        ks=tuple(args.k),
        temperatures=tuple(args.temperature),
        metric=args.metric,
        representations=tuple(args.representations),
        taus=tuple(args.taus),
        dtype="float64" if args.float64 else "float32",
        bootstrap=args.bootstrap,
        confidence=args.confidence,
        seed=args.seed,
    )
    return _finish(run_knn(args.checkpoints, extraction_options(args), settings, args.out))


def linear_grid(args: argparse.Namespace) -> int:
    """``semprobe linear-grid``."""
    from semprobe.cli.options import extraction_options
    from semprobe.protocols import LinearGridSettings, run_linear_grid

    settings = LinearGridSettings(
        train_taus=tuple(args.train_taus),
        eval_taus=tuple(args.eval_taus),
        strengths=_strengths(args),
        validation_fraction=args.validation_fraction,
        epochs=args.epochs,
        seed=args.seed,
        refit=not args.no_refit,
        baselines=not args.no_baselines,
    )
    options = extraction_options(args)
    return _finish(run_linear_grid(args.checkpoints, options, settings, args.out))


def _probe_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The probe options robustness and transfer share."""
    return {
        "representation": args.representation,
        "tau": args.tau,
        "strengths": _strengths(args),
        "validation_fraction": args.validation_fraction,
        "epochs": args.epochs,
        "seed": args.seed,
    }


def robustness(args: argparse.Namespace) -> int:
    """``semprobe robustness``."""
    from semprobe.cli.options import extraction_options
    from semprobe.protocols import RobustnessSettings, run_robustness

    settings = RobustnessSettings(
        evals=_pairs(args.evals, "--eval"),
        subsets=_pairs(args.subsets, "--subset"),
        label_fractions=tuple(args.label_fractions),
        label_files=_pairs(args.label_files, "--label-file"),
        **_probe_fields(args),
    )
    options = extraction_options(args)
    return _finish(run_robustness(args.checkpoints, options, settings, args.out))


def transfer(args: argparse.Namespace) -> int:
    """``semprobe transfer``."""
    from semprobe.cli.options import extraction_options
    from semprobe.protocols import TransferSettings, run_transfer

    settings = TransferSettings(
        datasets=tuple(args.datasets),
        **_probe_fields(args),
    )
    options = extraction_options(args)
    return _finish(run_transfer(args.checkpoints, options, settings, args.out))


def print_protocol_tables(result: StudyResult) -> None:
    """The protocol tables of a study (``semprobe study``), in the paper's layouts."""
    from semprobe.protocols.reports import complete_tables, report

    for protocol, tables in result.protocols.items():
        print()
        print(report(protocol, complete_tables(protocol, tables)).markdown)
