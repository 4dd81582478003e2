"""Argument value types: each parses one kind of value or says, in one line, what is allowed."""

from __future__ import annotations

import argparse
import math


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0)


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
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
    """A number; whether it is a valid temperature is checked with the other settings."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"tau must be a number, got {text!r}") from None
