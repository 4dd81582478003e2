"""The ``semprobe`` command line: one sub-command per job, flat arguments, one-line errors.

Every sub-command's errors in the user's input surface as ``semprobe: error: <one line>`` on
stderr with exit code 2 and no traceback (argparse already does this for malformed arguments).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from semprobe import __version__
from semprobe.errors import SemprobeError

Handler = Callable[[argparse.Namespace], int]


def add_data_arguments(parser: argparse.ArgumentParser, default: str = "synthetic") -> None:
    """``--dataset`` and friends, shared by every command that reads images."""
    parser.add_argument(
        "--dataset",
        default=default,
        help="cifar10, cifar100, imagefolder:PATH or synthetic[:train=N,test=M,seed=S] "
        "(default: %(default)s)",
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
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow checkpoints holding arbitrary pickled objects (can run code: only for files "
        "you trust)",
    )
    parser.add_argument("--args-json", default=None, help="args.json of a foreign checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "semprobe" / "features"


def _cmd_extract(args: argparse.Namespace) -> int:
    from semprobe.pipeline import extract_for_checkpoint

    for split in args.splits:
        fs = extract_for_checkpoint(args.checkpoint, args, split)
        logits = "none" if fs.logits is None else "x".join(map(str, fs.logits.shape))
        print(
            f"{split}: {len(fs.labels)} images, features {fs.features.shape[1]}, "
            f"SEM logits {logits} -> {fs.directory}"
        )
    return 0


def _cmd_wordnet_setup(args: argparse.Namespace) -> int:
    from semprobe.taxonomy import setup_wordnet

    target = Path(args.target) if args.target else None
    print(setup_wordnet(target, Path(args.source), allow_download=not args.no_download))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semprobe",
        description="Train and dissect Simplicial-Embedding (SEM) self-supervised models.",
    )
    parser.add_argument("--version", action="version", version=f"semprobe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    extract = sub.add_parser("extract", help="extract and cache features of a checkpoint")
    extract.add_argument("checkpoint")
    add_data_arguments(extract)
    add_extraction_arguments(extract)
    extract.add_argument("--splits", nargs="+", default=["train", "test"])
    extract.set_defaults(handler=_cmd_extract)

    wordnet = sub.add_parser("wordnet", help="WordNet 3.0 for the relevance analyses")
    wordnet_sub = wordnet.add_subparsers(dest="wordnet_command", required=True, metavar="ACTION")
    setup = wordnet_sub.add_parser(
        "setup", help="build NLTK's WordNet corpus from a local WordNet 3.0 (or download it)"
    )
    setup.add_argument("--source", default="/usr/share/wordnet", help="WordNet 3.0 dict folder")
    setup.add_argument("--target", default=None, help="NLTK data folder (default: $NLTK_DATA)")
    setup.add_argument("--no-download", action="store_true", help="never use nltk.download")
    setup.set_defaults(handler=_cmd_wordnet_setup)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Sub-commands defined in their own modules (imported lazily when run)."""
    from semprobe import commands

    return commands.REGISTRY


def run_handler(prog: str, handler: Handler, args: argparse.Namespace) -> int:
    """Run a command's handler: user errors are one line on stderr and exit code 2."""
    try:
        return handler(args)
    except SemprobeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_handler("semprobe", args.handler, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
