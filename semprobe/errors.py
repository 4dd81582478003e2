"""User-facing errors.

Every problem caused by the user's input (a bad path, a checkpoint that does not fit, a tau that is
not positive) is raised as :class:`SemprobeError`. The CLI turns it into one line on stderr and exit
code 2; library users can catch it. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SemprobeError(Exception):
    """An error in the user's input, with a message that says what to fix."""


class CheckpointError(SemprobeError):
    """A checkpoint that is missing, corrupt, untrusted or does not fit the model it describes."""


class DatasetError(SemprobeError):
    """A dataset name, path or split that cannot be read."""


class CacheError(SemprobeError):
    """A feature cache that cannot be written or read."""
