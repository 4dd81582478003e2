"""Registry of the sub-commands defined outside :mod:`semprobe.cli`.

Each entry adds one sub-parser and sets ``handler``; modules are imported only when their command
runs, so ``semprobe --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Register = Callable[[argparse._SubParsersAction], None]


def _pretrain(sub: argparse._SubParsersAction) -> None:
    from pretrain.cli import register

    register(sub)


REGISTRY: list[Register] = []
