"""Argument value types, and the parser whose every error is one line.

Each type parses one kind of value or says, in one line, what is allowed: negative, zero, NaN,
infinite and out-of-range values are refused where the option cannot take them, before any work
starts. :class:`Parser` prints argparse's own errors (unknown options, missing arguments, bad
choices and these types' refusals) as ``semprobe: error: ...`` on one line, exit code 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn

PROG = "semprobe"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``semprobe: error: <message>``, exit 2.

    argparse prints the usage before the message (several lines); ``--help`` still shows it.
    Sub-command parsers are made of the same class, so they inherit the behaviour.

    Examples
    --------
    >>> import contextlib, io
    >>> parser = Parser(prog="semprobe")
    >>> _ = parser.add_argument("--k", type=positive_int)
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     try:
    ...         parser.parse_args(["--k", "0"])
    ...     except SystemExit as exc:
    ...         code = exc.code
    >>> code, err.getvalue()
    (2, 'semprobe: error: argument --k: must be >= 1, got 0\\n')
    """

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line and exit with code 2."""
        line = " ".join(message.split())
        self.exit(2, f"{PROG}: error: {line}\n")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1.

    Examples
    --------
    >>> positive_int("3")
    3
    """
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0)


def vocab_size(text: str) -> int:
    """V, the vertices of a simplex: an integer >= 2 (a softmax over one vertex is constant)."""
    return _int_at_least(text, 2)


def seed_value(text: str) -> int:
    """A random seed: an integer in ``[0, 2**32)`` (what numpy's and torch's generators take)."""
    value = _int_at_least(text, 0)
    if value >= 2**32:
        raise argparse.ArgumentTypeError(f"must be < 2**32, got {text}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535."""
    value = _int_at_least(text, 1)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number <= 65535, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0.

    Examples
    --------
    >>> positive_float("0.5")
    0.5
    >>> positive_float("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a finite number > 0, got nan
    """
    value = _number(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def unit_interval(text: str) -> float:
    """A number in ``[0, 1]``."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}")
    return value


def l1_strength(text: str) -> float | str:
    """A finite number >= 0, or ``auto`` (chosen on a validation split)."""
    if text == "auto":
        return text
    try:
        return non_negative_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0 or auto, got {text!r}") from None


def tau_value(text: str) -> float:
    """A number; whether it is a valid temperature (finite, > 0) is checked with the other
    settings, which say so in one line too.

    Examples
    --------
    >>> tau_value("0.1")
    0.1
    """
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"tau must be a number, got {text!r}") from None


def print_error(message: str) -> None:
    """Print a user error as the one line every command uses."""
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
