"""Training the ``[pretrain.<name>]`` sections of a study: the trainer the command line hands in.

The analysis library never imports the training stack; a :class:`~semprobe.studies.Study` with
pretraining sections is given a trainer instead (see :class:`semprobe.studies.Trainer`), and
this is the one ``semprobe study`` and ``semprobe demo`` use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from semprobe.checkpoint import read_checkpoint
from semprobe.errors import SemprobeError
from semprobe.pretrain.config import PretrainConfig

# Options that may differ between a checkpoint and its study section: they say how a run was
# carried out, or they only set the online monitors, on which the analysed encoder does not depend.
_IGNORED_OPTIONS = frozenset(
    {
        "classifier_lr",
        "online_taus",
        "out",
        "resume",
        "progress",
        "workers",
        "threads",
        "log_every",
        "checkpoint_every",
        "keep_all_checkpoints",
        "data_root",
        "download",
        "dataset",  # its path moves with the repository; the data is checked by the cache key
        "accelerator",
        "devices",
        "strategy",
    }
)


class StudyTrainer:
    """Checks and trains a study's pretraining sections with :func:`semprobe.pretrain.run`.

    Examples
    --------
    >>> trainer = StudyTrainer()
    >>> trainer.check({"method": "byol", "epochs": 1}, "synthetic")
    >>> trainer.check({"method": "simsiam"}, "synthetic")
    Traceback (most recent call last):
    ...
    semprobe.errors.SemprobeError: unknown method 'simsiam'; choose one of byol, mocov2plus
    """

    def check(self, config: Mapping[str, Any], dataset: str) -> None:
        """Raise :class:`SemprobeError` unless ``config`` is a valid set of options."""
        PretrainConfig.from_dict({"dataset": dataset, **config}).resolved()

    def check_trained_as_asked(self, path: Path, config: Mapping[str, Any], dataset: str) -> None:
        """Refuse an existing checkpoint that was pretrained with other options.

        A study trains a model only when its checkpoint is missing; without this check, editing
        a ``[pretrain.<name>]`` section would silently analyse the old model. Checkpoints not
        written by ``semprobe pretrain`` (the authors', solo-learn's) carry no options and are
        accepted.
        """
        raw = read_checkpoint(path)
        meta = raw.get("semprobe_meta") if isinstance(raw, Mapping) else None
        saved = meta.get("pretrain_config") if isinstance(meta, Mapping) else None
        if not isinstance(saved, Mapping):
            return
        wanted = PretrainConfig.from_dict({"dataset": dataset, **config}).resolved().to_dict()
        differences = [
            f"{key} = {saved.get(key)!r} (the study asks {value!r})"
            for key, value in wanted.items()
            if key not in _IGNORED_OPTIONS and saved.get(key) != value
        ]
        if differences:
            raise SemprobeError(
                f"checkpoint {path} was pretrained with other options: {'; '.join(differences)}. "
                "Delete it to train it again, or point [checkpoints] at another file"
            )

    def train(self, config: Mapping[str, Any], path: Path, dataset: str) -> Path:
        """Train into ``path``'s folder (logs, periodic checkpoints); the final one is ``path``."""
        from semprobe.pretrain.train import run

        final = run({"dataset": dataset, **config, "out": str(path.parent)})
        if final.resolve() != path.resolve():
            os.replace(final, path)
        return path
