"""The probe's errors: :class:`SemprobeError` that scikit-learn also recognises."""

from __future__ import annotations

from semprobe.errors import SemprobeError


class ProbeError(SemprobeError, ValueError):
    """A bad probe parameter or input; also a ``ValueError``, as scikit-learn expects."""


class ProbeTypeError(ProbeError, TypeError):
    """Input of a type that cannot be read as numbers (scikit-learn expects a ``TypeError``)."""
