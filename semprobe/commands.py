"""Sub-commands defined outside :mod:`semprobe.cli`: each registers its parser and handler.

Heavy modules are imported inside the handlers, so ``semprobe --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from semprobe.cli import add_data_arguments, add_extraction_arguments

Register = Callable[[argparse._SubParsersAction], None]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _l1(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or auto, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_relevance_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the probe / W_K / relevance procedure."""
    group = parser.add_argument_group("relevance")
    group.add_argument(
        "--superclasses",
        default="coarse",
        help="coarse (the dataset's own), wordnet[:DEPTH] or file:PATH.csv; several separated by "
        "commas are all scored on the same probe, the first is the primary (default: "
        "%(default)s)",
    )
    group.add_argument(
        "--representation",
        default="auto",
        choices=("auto", "sem", "backbone", "logits"),
        help="features given to the probe; auto: SEM output for SEM models, backbone otherwise",
    )
    group.add_argument(
        "--tau",
        type=float,
        default=None,
        help="SEM temperature of the probe's features (default: the model's)",
    )
    group.add_argument("--k", type=_positive_int, default=10, help="features per category in W_K")
    group.add_argument("--k-max", type=_positive_int, default=50, help="largest K of the curve")
    group.add_argument(
        "--rule",
        default="category",
        choices=("category", "feature"),
        help="category: each category to its top-K features; feature: transposed",
    )
    group.add_argument(
        "--multiplicity", action="store_true", help="count 2-neighbours once per shared feature"
    )
    group.add_argument("--l1", type=_l1, default=1e-3, help="L1 strength, or auto (validation)")
    group.add_argument("--l2", type=float, default=0.0, help="L2 strength")
    group.add_argument(
        "--epochs", type=_positive_int, default=100, help="probe passes over the data"
    )
    group.add_argument(
        "--permutations", type=_positive_int, default=1000, help="size of the permutation null"
    )
    group.add_argument("--seed", type=int, default=0)
    group.add_argument(
        "--reference",
        choices=("random-init",),
        default=None,
        help="also score the same architecture at a seeded random initialisation",
    )
    group.add_argument("--no-concepts", action="store_true", help="skip the feature concept table")


def relevance_settings(args: argparse.Namespace):
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
    )


def print_relevance_report(table, results, out, by_superclasses=None) -> None:
    """The comparison table, a note on feature counts, and the most coherent simplices.

    With several superclass sources, ``by_superclasses`` (one row per model and source) follows.
    """
    import pandas as pd

    with pd.option_context(
        "display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format
    ):
        print(table.to_string(index=False))
        if by_superclasses is not None and by_superclasses["superclasses"].nunique() > 1:
            print("\nthe same W_K against each superclass source:")
            print(by_superclasses.to_string(index=False))
    if table["n_features"].nunique() > 1:
        print(
            "note: these models have different feature counts "
            f"({', '.join(map(str, sorted(table['n_features'].unique())))}); relevance depends "
            "on the number of features and the sparsity, so compare against each model's "
            "null and random-init reference rather than across models directly."
        )
    for result in results:
        concepts = result.concepts
        if concepts.empty or (concepts["simplex"] < 0).all():
            continue
        from semprobe.concepts import simplex_concepts

        top = simplex_concepts(concepts).head(5)
        print(f"\nmost coherent simplices of {result.name}:")
        for row in top.itertuples():
            print(f"  simplex {row.simplex}: {row.labels}")
    print(f"\nrun directory: {out}")


def _cmd_relevance(args: argparse.Namespace) -> int:
    study = _study_from_args(args, ["relevance"], relevance_settings(args))
    result = study.run(args.out)
    print_relevance_report(
        result.relevance, result.relevance_models, args.out, result.relevance_by_superclasses
    )
    return 0


def _relevance(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "relevance",
        help="sparse probe, feature-category graph and superclass relevance of checkpoints",
        description="Fit a sparse linear probe on each checkpoint's features, build the "
        "feature-category graph W_K and score its superclass relevance against a permutation "
        "null (Lavoie et al., ICLR 2023).",
    )
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    parser.add_argument("--out", default="runs/relevance", help="run directory to write")
    add_data_arguments(parser, default="cifar100")
    add_extraction_arguments(parser)
    add_relevance_arguments(parser)
    parser.set_defaults(handler=_cmd_relevance)


REGISTRY: list[Register] = [_relevance]


def _taus(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"tau must be a number, got {text!r}") from None


def _study_from_args(args, analyses, relevance=None):
    """A :class:`~semprobe.studies.Study` of the command line's checkpoints."""
    from pathlib import Path

    from semprobe.analysis import RelevanceSettings, model_name
    from semprobe.pipeline import ExtractionOptions
    from semprobe.studies import ProbeSettings, Study

    options = ExtractionOptions.from_args(args)
    names: dict[str, str] = {}
    taken: set[str] = set()
    for ckpt in args.checkpoints:
        names[model_name(ckpt, taken)] = ckpt
    probe = ProbeSettings()
    if "tau_sweep" in analyses:
        probe = ProbeSettings(l1=args.l1, l2=args.l2, epochs=args.epochs, seed=args.seed)
    return Study(
        checkpoints={k: Path(v) for k, v in names.items()},
        dataset=args.dataset,
        taus=getattr(args, "taus", [1.0]),
        analyses=analyses,
        options=options,
        probe=probe,
        relevance=relevance or RelevanceSettings(),
    )


def _cmd_entropy(args: argparse.Namespace) -> int:
    import pandas as pd

    study = _study_from_args(args, ["entropy"])
    result = study.run(args.out)
    for name, report in result.entropy.items():
        print(f"{name}:")
        with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
            print(report.summary.to_string(index=False))
    for note in result_notes(result):
        print(f"note: {note}")
    print(f"\nrun directory: {args.out}")
    return 0


def result_notes(result) -> list[str]:
    import json

    if result.out is None:
        return []
    return list(json.loads((result.out / "run.json").read_text())["parameters"].get("notes", []))


def _cmd_tau_sweep(args: argparse.Namespace) -> int:
    import pandas as pd

    study = _study_from_args(args, ["tau_sweep"])
    result = study.run(args.out)
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(result.sweep.to_string(index=False))
    print(f"\nrun directory: {args.out}")
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    import pandas as pd

    from semprobe.studies import accuracy_table, load_study

    study, out = load_study(args.study_file)
    result = study.run(args.out or out)
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        if len(result.sweep):
            print("linear-probe accuracy (test top-1) per representation:")
            print(accuracy_table(result.sweep).to_string(na_rep="-"))
    if len(result.relevance):
        print_relevance_report(
            result.relevance,
            result.relevance_models,
            result.out,
            result.relevance_by_superclasses,
        )
    else:
        print(f"\nrun directory: {result.out}")
    return 0


def _add_common(parser: argparse.ArgumentParser, out: str) -> None:
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    parser.add_argument(
        "--taus",
        nargs="+",
        type=_taus,
        default=[0.01, 0.1, 1.0, 10.0],
        help="temperatures (default: %(default)s)",
    )
    parser.add_argument("--out", default=out, help="run directory to write")
    add_data_arguments(parser)
    add_extraction_arguments(parser)


def _entropy(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("entropy", help="per-simplex entropy statistics at several taus")
    _add_common(parser, "runs/entropy")
    parser.set_defaults(handler=_cmd_entropy)


def _tau_sweep(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "tau-sweep", help="probe accuracy of f_SEM(tau) per tau vs backbone features and logits"
    )
    _add_common(parser, "runs/tau-sweep")
    parser.add_argument("--l1", type=_l1, default=0.0, help="L1 strength (default: none)")
    parser.add_argument("--l2", type=float, default=1e-4, help="L2 strength")
    parser.add_argument("--epochs", type=_positive_int, default=40, help="probe epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_cmd_tau_sweep)


def _study(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("study", help="run a study described in a TOML or YAML file")
    parser.add_argument("study_file")
    parser.add_argument("--out", default=None, help="run directory (default: the file's out)")
    parser.set_defaults(handler=_cmd_study)


REGISTRY += [_entropy, _tau_sweep, _study]


def _dashboard(sub: argparse._SubParsersAction) -> None:
    from semprobe.app.launch import register

    register(sub)


REGISTRY += [_dashboard]


def _demo(sub: argparse._SubParsersAction) -> None:
    from semprobe.demo import register

    register(sub)


def _pretrain(sub: argparse._SubParsersAction) -> None:
    from semprobe.pretrain.cli import register

    register(sub)


REGISTRY += [_demo, _pretrain]
