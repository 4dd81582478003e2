"""What every ``semprobe`` sub-command accepts: all argument definitions, in one place.

Each sub-command's parser is built here and bound to its handler in :mod:`.commands` (or
:mod:`.demo`); the handlers import the heavy modules, so ``semprobe --help`` stays fast. Values
are checked by argparse where a type says what is allowed (exit code 2, one line).
"""

from __future__ import annotations

import argparse

from semprobe import __version__
from semprobe.cli import commands, demo, evaluate_arguments
from semprobe.cli.values import (
    Parser,
    l1_strength,
    non_negative_float,
    non_negative_int,
    port_number,
    positive_float,
    positive_int,
    seed_value,
    tau_value,
    vocab_size,
)
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

Subparsers = argparse._SubParsersAction


# -- option groups shared by several commands ----------------------------------------------------


def add_data_arguments(parser: argparse.ArgumentParser, default: str = "synthetic") -> None:
    """``--dataset`` and friends, shared by every command that reads images."""
    parser.add_argument(
        "--dataset",
        default=default,
        help="cifar10, cifar100, imagefolder:PATH, imagenet:PATH or "
        "synthetic[:train=N,test=M,seed=S] (default: %(default)s)",
    )
    parser.add_argument("--data-root", default=None, help="where torchvision datasets live")
    parser.add_argument(
        "--no-download", action="store_true", help="fail instead of downloading a missing dataset"
    )


def add_extraction_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the feature cache and the extraction loop."""
    parser.add_argument(
        "--cache-dir", default=None, help="feature cache (default: ~/.cache/semprobe/features)"
    )
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader workers")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow checkpoints holding arbitrary pickled objects (can run code: only for files "
        "you trust)",
    )
    parser.add_argument("--args-json", default=None, help="args.json of a foreign checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    transform = parser.add_argument_group(
        "evaluation transform (default: from the checkpoint's stem and the dataset)"
    )
    transform.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        help="centre-crop side (default: 32 for the CIFAR stem, 224 for the ImageNet stem)",
    )
    transform.add_argument(
        "--resize",
        default=None,
        metavar="N|none",
        help="shorter side before the crop (default: none for 32 px data at 32, else 256 for "
        "224 and the crop size below 64); none feeds images as stored",
    )
    transform.add_argument(
        "--normalize",
        default=None,
        metavar="NAME|MEAN,STD",
        help="cifar10, cifar100, imagenet, authors-cifar, authors-imagenet, or numbers "
        "(default: what the checkpoint was evaluated with)",
    )
    transform.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out images that cannot be decoded (found by one decoding pass, counted) "
        "instead of stopping at the first",
    )


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
    group.add_argument("--k", type=positive_int, default=10, help="features per category in W_K")
    group.add_argument("--k-max", type=positive_int, default=50, help="largest K of the curve")
    group.add_argument(
        "--rule",
        default="category",
        choices=("category", "feature"),
        help="category: each category to its top-K features; feature: transposed",
    )
    group.add_argument(
        "--multiplicity", action="store_true", help="count 2-neighbours once per shared feature"
    )
    group.add_argument(
        "--l1", type=l1_strength, default=1e-3, help="L1 strength, or auto (validation)"
    )
    group.add_argument("--l2", type=non_negative_float, default=0.0, help="L2 strength")
    group.add_argument(
        "--epochs", type=positive_int, default=100, help="probe passes over the data"
    )
    group.add_argument(
        "--permutations", type=positive_int, default=1000, help="size of the permutation null"
    )
    group.add_argument("--seed", type=seed_value, default=0)
    group.add_argument(
        "--bootstrap",
        type=positive_int,
        default=None,
        metavar="N",
        help="percentile intervals from N resamples of the train and test images (the probe "
        "refitted on each): relevance, K curve, top-1, lifts",
    )
    group.add_argument(
        "--confidence",
        type=positive_float,
        default=0.95,
        help="confidence of the bootstrap intervals, in (0, 1) (default: %(default)s)",
    )
    group.add_argument(
        "--reference",
        choices=("random-init",),
        default=None,
        help="also score the same architecture at a seeded random initialisation",
    )
    group.add_argument("--no-concepts", action="store_true", help="skip the feature concept table")
    group.add_argument(
        "--no-simplex-copy",
        action="store_true",
        help="do not keep logits_by_simplex.npy, the simplex-major copy of the test logits that "
        "lets the dashboard read one simplex fast (it doubles the logits' disk)",
    )
    group.add_argument(
        "--synsets",
        metavar="FILE",
        default=None,
        help="class,synset CSV mapping classes to WordNet senses by hand (e.g. "
        "maple_tree,maple.n.02), for wordnet superclasses and concept labels",
    )


def _add_checkpoints_and_taus(parser: argparse.ArgumentParser, out: str) -> None:
    """Checkpoints, temperatures, a run directory and the data / extraction options."""
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    parser.add_argument(
        "--taus",
        nargs="+",
        type=tau_value,
        default=[0.01, 0.1, 1.0, 10.0],
        help="temperatures (default: %(default)s)",
    )
    parser.add_argument("--out", default=out, help="run directory to write")
    add_data_arguments(parser)
    add_extraction_arguments(parser)


def _default(name: str) -> str:
    """Help text for an option whose default depends on the method and/or the dataset."""
    paper, synthetic = DATASET_DEFAULTS["paper"], DATASET_DEFAULTS["synthetic"]
    if name not in paper:
        by_method = ", ".join(
            f"{m} {METHOD_DEFAULTS[m][name]}" for m in METHODS if name in METHOD_DEFAULTS[m]
        )
        text = f"default: {by_method}"
    else:
        text = f"default: {paper[name]}"
    if name in synthetic and f" {synthetic[name]}" not in text:
        text += f"; {synthetic[name]} on synthetic"
    return f"({text})"


def _pretrain_model_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("method and model")
    d = PretrainConfig()
    g.add_argument("--method", help=f"{', '.join(METHODS)} (default: {d.method})")
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
    g.add_argument("--vocab", type=vocab_size, metavar="V", help=f"V {_default('vocab')}")
    g.add_argument("--tau-online", type=float, help=f"online SEM tau {_default('tau_online')}")
    g.add_argument(
        "--tau-target",
        type=float,
        help="SEM tau of the momentum branch, or of view 2 for methods without one "
        f"{_default('tau_target')}",
    )
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
        "--proj-dim", type=int, help=f"projector output width {_default('proj_output_dim')}"
    )
    g.add_argument(
        "--pred-hidden-dim",
        type=int,
        help="BYOL predictor hidden width (default: 4096; 512 on synthetic)",
    )
    g.add_argument(
        "--queue-size",
        type=int,
        help="MoCo keys / SwAV projections per queue, a multiple of the total batch "
        "(default: mocov2plus 32768, swav 3840; 4096 and 512 on synthetic)",
    )
    g.add_argument(
        "--temperature",
        type=float,
        help=f"contrastive / SwAV / DINO student temperature {_default('temperature')}",
    )


def _pretrain_data_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    d = PretrainConfig()
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


def _pretrain_optimisation_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("optimisation")
    d = PretrainConfig()
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
        "--base-momentum", type=float, help=f"initial EMA momentum {_default('base_momentum')}"
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


def _pretrain_hardware_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("hardware")
    d = PretrainConfig()
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


def _pretrain_output_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("output")
    d = PretrainConfig()
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


def _pretrain_method_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("method options (refused by the methods that do not read them)")
    g.add_argument(
        "--num-prototypes", type=int, help=f"SwAV / DINO prototypes {_default('num_prototypes')}"
    )
    g.add_argument(
        "--queue-start-epoch",
        type=int,
        help=f"first epoch whose SwAV assignments use the queue {_default('queue_start_epoch')}",
    )
    g.add_argument(
        "--freeze-prototypes-epochs",
        type=int,
        help="epochs with the SwAV prototypes / DINO last layer frozen "
        f"{_default('freeze_prototypes_epochs')}",
    )
    g.add_argument(
        "--teacher-temperature",
        type=float,
        help=f"DINO teacher temperature after warm-up {_default('teacher_temperature')}",
    )
    g.add_argument(
        "--warmup-teacher-temperature",
        type=float,
        help=f"DINO teacher temperature at epoch 0 {_default('warmup_teacher_temperature')}",
    )
    g.add_argument(
        "--warmup-teacher-epochs",
        type=int,
        help=f"DINO teacher temperature warm-up {_default('warmup_teacher_epochs')}",
    )
    g.add_argument(
        "--barlow-lambda",
        type=float,
        help=f"Barlow Twins off-diagonal weight {_default('barlow_lambda')}",
    )
    g.add_argument(
        "--scale-loss", type=float, help=f"Barlow Twins loss factor {_default('scale_loss')}"
    )
    for term in ("sim", "var", "cov"):
        g.add_argument(
            f"--{term}-loss-weight",
            type=float,
            help=f"VICReg {term} term weight {_default(f'{term}_loss_weight')}",
        )


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    """Every pre-training option; each defaults to None so that the config file can fill it."""
    _pretrain_model_options(parser)
    _pretrain_method_options(parser)
    _pretrain_data_options(parser)
    _pretrain_optimisation_options(parser)
    _pretrain_hardware_options(parser)
    _pretrain_output_options(parser)
    parser.add_argument("--config", metavar="FILE", help="TOML or YAML file of options (flat keys)")


# -- the sub-commands ----------------------------------------------------------------------------


def _extract(sub: Subparsers) -> None:
    parser = sub.add_parser("extract", help="extract and cache features of a checkpoint")
    parser.add_argument("checkpoint")
    add_data_arguments(parser)
    add_extraction_arguments(parser)
    parser.add_argument("--splits", nargs="+", default=["train", "test"])
    parser.set_defaults(handler=commands.extract)


def _wordnet(sub: Subparsers) -> None:
    parser = sub.add_parser("wordnet", help="WordNet 3.0 for the relevance analyses")
    actions = parser.add_subparsers(dest="wordnet_command", required=True, metavar="ACTION")
    setup = actions.add_parser(
        "setup", help="build NLTK's WordNet corpus from a local WordNet 3.0 (or download it)"
    )
    setup.add_argument("--source", default="/usr/share/wordnet", help="WordNet 3.0 dict folder")
    setup.add_argument("--target", default=None, help="NLTK data folder (default: $NLTK_DATA)")
    setup.add_argument("--no-download", action="store_true", help="never use nltk.download")
    setup.set_defaults(handler=commands.wordnet_setup)


def _relevance(sub: Subparsers) -> None:
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
    parser.set_defaults(handler=commands.relevance)


def _entropy(sub: Subparsers) -> None:
    parser = sub.add_parser("entropy", help="per-simplex entropy statistics at several taus")
    _add_checkpoints_and_taus(parser, "runs/entropy")
    parser.set_defaults(handler=commands.entropy)


def _tau_sweep(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "tau-sweep", help="probe accuracy of f_SEM(tau) per tau vs backbone features and logits"
    )
    _add_checkpoints_and_taus(parser, "runs/tau-sweep")
    parser.add_argument("--l1", type=l1_strength, default=0.0, help="L1 strength (default: none)")
    parser.add_argument("--l2", type=non_negative_float, default=1e-4, help="L2 strength")
    parser.add_argument("--epochs", type=positive_int, default=40, help="probe epochs")
    parser.add_argument("--seed", type=seed_value, default=0)
    parser.set_defaults(handler=commands.tau_sweep)


def _study(sub: Subparsers) -> None:
    parser = sub.add_parser("study", help="run a study described in a TOML or YAML file")
    parser.add_argument("study_file")
    parser.add_argument("--out", default=None, help="run directory (default: the file's out)")
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=seed_value,
        default=None,
        metavar="S",
        help="run the study once per seed (replaces the file's seeds = [...])",
    )
    parser.set_defaults(handler=commands.study)


def _dashboard(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "dashboard",
        help="browse run directories in a web dashboard (Streamlit)",
        description="Serve the semprobe dashboard on one or more run directories.",
    )
    parser.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="run directories written by semprobe relevance / study",
    )
    parser.add_argument(
        "--port", type=port_number, default=8501, help="port (default: %(default)s)"
    )
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only)",
    )
    parser.add_argument(
        "--browser", action="store_true", help="open a web browser on start (default: headless)"
    )
    parser.set_defaults(handler=commands.dashboard)


def _report(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "report",
        help="one self-contained HTML page of a run's main figures and tables (opens offline)",
    )
    parser.add_argument("run_dir", metavar="RUN", help="run directory written by semprobe")
    # Not ``out``: preflight checks that one as a folder.
    parser.add_argument(
        "--out", dest="report_out", default="report.html", help="HTML file (default: %(default)s)"
    )
    parser.set_defaults(handler=commands.html_report)


def _demo(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "demo",
        help="pretrain tiny BYOL+SEM and BYOL on synthetic data and analyse both (offline, CPU)",
    )
    parser.add_argument("--out", default="demo", help="folder for checkpoints and the run")
    parser.add_argument(
        "--epochs", type=positive_int, default=demo.EPOCHS, help="pretraining epochs per model"
    )
    parser.add_argument("--seed", type=seed_value, default=0)
    parser.add_argument(
        "--dataset", default=demo.DATASET, help="any --dataset (default: synthetic)"
    )
    parser.set_defaults(handler=demo.run_demo)


def _pretrain(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "pretrain",
        help="pre-train a self-supervised model (BYOL, MoCo v2+, SimCLR, ...), with or without SEM",
        description="Pre-train BYOL, MoCo v2+, SimCLR, Barlow Twins, VICReg, SwAV or DINO with or "
        "without the SEM layer (Lavoie et al., ICLR 2023). Defaults reproduce the authors' "
        "CIFAR-100 ResNet-18 runs. Precedence: "
        "per-(method, dataset) defaults < --config FILE < options on the command line.",
    )
    add_pretrain_arguments(parser)
    parser.set_defaults(handler=commands.pretrain)


def build_parser() -> argparse.ArgumentParser:
    """The ``semprobe`` parser with every sub-command (each error one line: ``values.Parser``)."""
    parser = Parser(
        prog="semprobe",
        description="Train and dissect Simplicial-Embedding (SEM) self-supervised models.",
    )
    parser.add_argument("--version", action="version", version=f"semprobe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _extract,
        _wordnet,
        _relevance,
        _entropy,
        _tau_sweep,
        _study,
        _dashboard,
        _report,
        _demo,
        _pretrain,
    ):
        add(sub)
    evaluate_arguments.add_commands(sub, add_data_arguments, add_extraction_arguments)
    return parser
