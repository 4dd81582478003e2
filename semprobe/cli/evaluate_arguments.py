"""The arguments of the evaluation commands: ``knn``, ``linear-grid``, ``robustness``, ``transfer``.

:func:`add_commands` is called by :func:`semprobe.cli.arguments.build_parser`, which hands over
its shared option groups (this module cannot import it: that would be an import cycle).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from semprobe.cli import evaluate
from semprobe.cli.values import non_negative_float, positive_int, seed_value, tau_value

Subparsers = argparse._SubParsersAction
AddOptions = Callable[..., None]

AUTHORS_TAUS = [1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0]


def number(text: str) -> float:
    """A number; whether it is in range is checked with the other settings (one-line errors)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _probe_options(parser: argparse.ArgumentParser, l1: list[float], l2: list[float]) -> None:
    group = parser.add_argument_group(
        "probe (several strengths: a validation split of the training rows chooses one)"
    )
    group.add_argument(
        "--l1",
        nargs="*",
        type=non_negative_float,
        default=l1,
        help="pure-L1 strengths on standardised features; --l1 alone: none (default: %(default)s)",
    )
    group.add_argument(
        "--l2",
        nargs="*",
        type=non_negative_float,
        default=l2,
        help="pure-L2 strengths; --l2 alone: none (default: %(default)s)",
    )
    group.add_argument(
        "--validation-fraction",
        type=number,
        default=0.1,
        help="share of the training rows held out to choose the strength (default: %(default)s)",
    )
    group.add_argument(
        "--epochs", type=positive_int, default=40, help="probe passes (default: %(default)s)"
    )
    group.add_argument("--seed", type=int, default=0, help="validation split and label fractions")


def _representation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--representation",
        default="auto",
        choices=("auto", "sem", "backbone", "logits"),
        help="the probe's features; auto: SEM output at the model's tau, backbone without SEM",
    )
    parser.add_argument(
        "--tau", type=tau_value, default=None, help="SEM temperature (default: the model's)"
    )


def _data_root_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=None, help="where torchvision datasets live")
    parser.add_argument(
        "--no-download", action="store_true", help="fail instead of downloading a missing dataset"
    )


def _knn(sub: Subparsers, data: AddOptions, extraction: AddOptions) -> None:
    parser = sub.add_parser(
        "knn",
        help="weighted kNN accuracy of cached features (solo-learn's and lightly's conventions)",
        description="Exact weighted kNN, streamed over the training features: each test image's "
        "k nearest training images vote with weight exp(cos / T). Without --k and "
        "--temperature: solo-learn's k=20, T=0.07 and lightly's k=200, T=0.1.",
    )
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    parser.add_argument("--k", nargs="+", type=positive_int, default=[], help="neighbour counts")
    parser.add_argument(
        "--temperature", nargs="+", type=number, default=[], metavar="T", help="vote temperatures"
    )
    parser.add_argument("--metric", choices=("cosine", "euclidean"), default="cosine")
    parser.add_argument(
        "--representations",
        nargs="+",
        choices=("backbone", "logits", "sem"),
        default=["backbone", "logits", "sem"],
        help="features to search (default: all three; sem at each --taus)",
    )
    parser.add_argument(
        "--taus",
        nargs="+",
        type=tau_value,
        default=[0.01, 0.1, 1.0, 10.0],
        help="temperatures of the sem representation (default: %(default)s)",
    )
    parser.add_argument(
        "--float64",
        action="store_true",
        help="similarities in float64 (SEM outputs at a high tau are nearly uniform)",
    )
    parser.add_argument(
        "--bootstrap",
        type=positive_int,
        default=None,
        metavar="N",
        help="percentile intervals of the accuracies from N resamples of the test images",
    )
    parser.add_argument(
        "--confidence",
        type=number,
        default=0.95,
        help="confidence of the bootstrap intervals, in (0, 1) (default: %(default)s)",
    )
    parser.add_argument("--seed", type=seed_value, default=0, help="seed of the resamples")
    parser.add_argument("--out", default="runs/knn", help="run directory to write")
    data(parser, default="cifar100")
    extraction(parser)
    parser.set_defaults(handler=evaluate.knn)


def _linear_grid(sub: Subparsers, data: AddOptions, extraction: AddOptions) -> None:
    parser = sub.add_parser(
        "linear-grid",
        help="the SEM authors' linear protocol: probes per tau_train, evaluated at each tau_eval",
        description="Train a probe on softmax(z / tau_train) for each training tau and each "
        "strength, choose the strength on a validation split, and evaluate every probe at every "
        "tau_eval; plus probes on the backbone features and the pre-softmax embedding.",
    )
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    parser.add_argument(
        "--train-taus",
        nargs="+",
        type=tau_value,
        default=AUTHORS_TAUS,
        help="training temperatures (default: the authors' %(default)s)",
    )
    parser.add_argument(
        "--eval-taus",
        nargs="+",
        type=tau_value,
        default=AUTHORS_TAUS,
        help="evaluation temperatures (default: the authors' %(default)s)",
    )
    _probe_options(parser, l1=[1e-5, 1e-4], l2=[1e-4, 1e-3])
    parser.add_argument(
        "--no-refit",
        action="store_true",
        help="keep the fit without the validation rows instead of refitting on all of them",
    )
    parser.add_argument(
        "--no-baselines", action="store_true", help="skip the backbone and logits probes"
    )
    parser.add_argument("--out", default="runs/linear-grid", help="run directory to write")
    data(parser, default="cifar100")
    extraction(parser)
    parser.set_defaults(handler=evaluate.linear_grid)


def _robustness(sub: Subparsers, extraction: AddOptions) -> None:
    parser = sub.add_parser(
        "robustness",
        help="probes trained on one dataset (100 %% / 1 %% labels), scored on shifted ones",
        description="The paper's Table 2: a probe per label set on --train, scored on its test "
        "split and on each --eval set (classfolder:PATH for ImageNet-V2/R/A, imagenet-c:PATH, "
        "or any dataset), its outputs restricted to the classes present.",
    )
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    parser.add_argument("--train", dest="dataset", required=True, metavar="DATASET")
    parser.add_argument(
        "--eval",
        dest="evals",
        nargs="+",
        required=True,
        metavar="NAME=DATASET",
        help="evaluation sets, e.g. r=classfolder:imagenet-r c=imagenet-c:imagenet-c",
    )
    parser.add_argument(
        "--subset",
        dest="subsets",
        nargs="+",
        default=[],
        metavar="NAME=CLASSES",
        help="restrict an evaluation set to classes: names or WordNet ids, comma-separated or "
        "@FILE (one per line)",
    )
    parser.add_argument(
        "--label-fraction",
        dest="label_fractions",
        nargs="+",
        type=number,
        metavar="F",
        default=[1.0],
        help="fractions of the training labels, class-balanced and seeded (default: 1)",
    )
    parser.add_argument(
        "--label-file",
        dest="label_files",
        nargs="+",
        default=[],
        metavar="NAME=FILE",
        help="standard label lists, e.g. 1pct=1percent.txt (one image file name per line)",
    )
    _representation_options(parser)
    _probe_options(parser, l1=[], l2=[1e-4])
    parser.add_argument("--out", default="runs/robustness", help="run directory to write")
    _data_root_options(parser)
    extraction(parser)
    parser.set_defaults(handler=evaluate.robustness)


def _transfer(sub: Subparsers, extraction: AddOptions) -> None:
    parser = sub.add_parser(
        "transfer",
        help="a linear probe per target dataset: one table for several checkpoints",
        description="The paper's Table 3: for each checkpoint and dataset, a probe on the "
        "training split scored on the test split (top-1 and mean per-class accuracy).",
    )
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    parser.add_argument(
        "--datasets",
        nargs="+",
        required=True,
        metavar="DATASET",
        help="food101 cifar10 cifar100 sun397 dtd pets flowers102 caltech101 stanford_cars or "
        "imagefolder:PATH",
    )
    _representation_options(parser)
    _probe_options(parser, l1=[], l2=[1e-4])
    parser.add_argument("--out", default="runs/transfer", help="run directory to write")
    _data_root_options(parser)
    extraction(parser)
    parser.set_defaults(handler=evaluate.transfer, dataset=None)


def add_commands(sub: Subparsers, data: AddOptions, extraction: AddOptions) -> None:
    """Add the four evaluation commands, given the shared data and extraction option groups."""
    _knn(sub, data, extraction)
    _linear_grid(sub, data, extraction)
    _robustness(sub, extraction)
    _transfer(sub, extraction)
