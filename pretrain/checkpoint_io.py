"""One checkpoint file that is both a semprobe model and a Lightning resume point.

Lightning hands every checkpoint it writes (periodic, final) to the strategy's ``CheckpointIO``.
:class:`SemprobeCheckpointIO` adds semprobe's header keys (``semprobe_format``,
``semprobe_format_version``, ``semprobe_spec``, ``semprobe_meta``) to Lightning's dict, whose
``state_dict`` already holds the analysed network under ``encoder.``, and writes it atomically
(temporary file, fsync, rename): a run killed while saving leaves the previous file intact.
Reading goes through :func:`semprobe.checkpoint.read_checkpoint`, i.e. ``torch.load`` with
``weights_only=True``, so resuming never unpickles code; everything written is tensors and plain
data.

:class:`PeriodicCheckpoint` is Lightning's ``ModelCheckpoint`` that also keeps
``checkpoints/last.ckpt`` naming the newest file. Lightning's own ``save_last`` writes the state a
second time (``True``) or removes and recreates a symbolic link to a file that the next save
deletes (``"link"``); here ``last.ckpt`` becomes a hard link to the file just written (a copy where
the file system has no hard links), built under a temporary name and renamed into place, so it
always names a complete checkpoint and costs no second write.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from semprobe import __version__
from semprobe.atomic import atomic_path
from semprobe.checkpoint import FORMAT_NAME, FORMAT_VERSION, read_checkpoint
from semprobe.model import ModelSpec


class SemprobeCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` writing semprobe-format, weights-only-loadable checkpoints.

    Parameters
    ----------
    spec:
        The spec of the module's ``encoder``.
    meta:
        Plain data stored under ``semprobe_meta`` (the pre-training config, for instance); the
        epoch and global step of each checkpoint are added.
    """

    def __init__(self, spec: ModelSpec, meta: Mapping[str, Any]) -> None:
        super().__init__()
        self.spec = spec
        self.meta = dict(meta)

    def save_checkpoint(
        self,
        checkpoint: dict[str, Any],
        path: str | os.PathLike[str],
        storage_options: Any | None = None,
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        payload = dict(checkpoint)
        payload["semprobe_format"] = FORMAT_NAME
        payload["semprobe_format_version"] = FORMAT_VERSION
        payload["semprobe_spec"] = self.spec.to_dict()
        payload["semprobe_meta"] = {
            "created_by": f"semprobe {__version__} pretrain",
            **self.meta,
            "epoch": int(checkpoint.get("epoch", 0)),
            "global_step": int(checkpoint.get("global_step", 0)),
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    def load_checkpoint(
        self,
        path: str | os.PathLike[str],
        map_location: Any | None = None,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        # Always weights-only, whatever Lightning asks: our files never need more.
        return read_checkpoint(path)


LAST_NAME = "last.ckpt"


def link_atomically(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> None:
    """Make ``destination`` a second name of ``source``, replacing it atomically.

    A hard link where the file system allows one, else a copy; either is made under a temporary
    name beside ``destination`` and renamed over it, so a reader sees the old file or the new one.
    """
    src, dest = Path(source), Path(destination)
    if dest.exists() and os.path.samefile(src, dest):
        return  # rename() between two names of one file would do nothing
    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


class PeriodicCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that points ``<dirpath>/last.ckpt`` at each file it writes."""

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        # Lightning writes on global rank 0 only, and all ranks wait for it before going on.
        if trainer.is_global_zero:
            self.point_last_at(filepath)

    def point_last_at(self, path: str | os.PathLike[str]) -> None:
        """Make ``last.ckpt`` (beside the periodic checkpoints) name ``path``."""
        if self.dirpath is None:
            raise ValueError("PeriodicCheckpoint needs a dirpath")
        link_atomically(path, Path(self.dirpath) / LAST_NAME)
