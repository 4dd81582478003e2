"""The ``semprobe`` command line: one sub-command per job, flat arguments, one-line errors.

The layer above the analysis library, the dashboard and the training stack: it parses options
(:mod:`.arguments`), checks what is cheap to check (:mod:`.preflight`), runs a command
(:mod:`.commands`, :mod:`.demo`) and prints its report (:mod:`.report`). A user's mistake
surfaces as ``semprobe: error: <one line>`` on stderr with exit code 2 and no traceback: argparse's
own errors through :class:`.values.Parser`, everything found later as a
:class:`~semprobe.errors.SemprobeError`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from semprobe.errors import SemprobeError

Handler = Callable[[argparse.Namespace], int]


def run_handler(prog: str, handler: Handler, args: argparse.Namespace) -> int:
    """Run a command's handler: user errors are one line on stderr and exit code 2.

    The cheap checks of :func:`.preflight.preflight` (input files, output folders) come first.
    """
    from semprobe.cli.preflight import preflight
    from semprobe.cli.values import print_error

    try:
        preflight(args)
        return handler(args)
    except SemprobeError as exc:
        print_error(str(exc))
        return 2
    except KeyboardInterrupt:
        import sys

        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """``semprobe [COMMAND] [OPTIONS]``; returns the exit code."""
    from semprobe.cli.arguments import build_parser

    args = build_parser().parse_args(argv)
    return run_handler("semprobe", args.handler, args)


__all__ = ["main", "run_handler"]
