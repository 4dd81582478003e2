"""Training the ``[pretrain.<name>]`` sections of a study: the trainer the command line hands in.

The analysis library never imports the training stack; a :class:`~semprobe.studies.Study` with
pretraining sections is given a trainer instead (see :class:`semprobe.studies.Trainer`), and
this is the one ``semprobe study`` and ``semprobe demo`` use.

A checkpoint that exists is reused only if it was pretrained as its section asks, on the same
training data: the dataset is compared by what pretraining read (see :func:`same_training_data`),
so a folder that moved with the repository is still the same data, while another synthetic seed
or size, or another folder's images, makes the checkpoint stale.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from semprobe.checkpoint import read_checkpoint
from semprobe.errors import SemprobeError
from semprobe.pretrain.config import PretrainConfig

# Defaults of the synthetic options that the training split depends on (semprobe.data).
_SYNTHETIC_TRAIN_DEFAULTS = {"train": "50", "seed": "0"}

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
        "dataset",  # compared by same_training_data: a folder's path may move with the repository
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
    >>> trainer.check({"method": "simsiam"}, "synthetic")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    semprobe.errors.SemprobeError: unknown method 'simsiam'; choose one of byol, mocov2plus, ...
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
        trained_on = str(saved.get("dataset"))
        if not same_training_data(trained_on, dataset):
            differences.insert(0, f"dataset = {trained_on!r} (the study asks {dataset!r})")
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


def same_training_data(trained_on: str, wanted: str) -> bool:
    """Whether a checkpoint pretrained on ``trained_on`` saw the training split of ``wanted``.

    * ``synthetic[:...]``: the same ``train`` size and ``seed`` (``test`` does not change what
      pretraining reads);
    * a folder dataset (``imagefolder:PATH`` and the like): the same folder, or a folder with the
      same classes and numbers of training images (a copy, or the same data moved with the
      repository; a path that no longer exists counts as moved if its folder name is the same);
    * anything else (``cifar100``, ...): the same name.

    Examples
    --------
    >>> same_training_data("synthetic:train=20,test=10", "synthetic:test=4,train=20,seed=0")
    True
    >>> same_training_data("synthetic:train=20", "synthetic:train=10")
    False
    >>> same_training_data("cifar100", "cifar10")
    False
    """
    kind, _, rest = trained_on.partition(":")
    wanted_kind, _, wanted_rest = wanted.partition(":")
    if kind != wanted_kind:
        return False
    if kind == "synthetic":
        return _synthetic_train(rest) == _synthetic_train(wanted_rest)
    if rest and wanted_rest and ("/" in rest + wanted_rest or Path(rest).exists()):
        return _same_folder(Path(rest), Path(wanted_rest))
    return rest == wanted_rest


def _synthetic_train(options: str) -> dict[str, str]:
    """The options of a synthetic dataset that its training split depends on."""
    values = dict(_SYNTHETIC_TRAIN_DEFAULTS)
    for item in filter(None, (part.strip() for part in options.split(","))):
        key, _, value = item.partition("=")
        if key.strip() in values:
            values[key.strip()] = value.strip().lstrip("+0") or "0"
    return values


def _same_folder(trained: Path, wanted: Path) -> bool:
    if not trained.exists():
        return trained.name == wanted.name  # moved (with the repository, typically)
    if trained.resolve() == wanted.resolve():
        return True
    listing = _train_listing(trained)
    return listing is not None and listing == _train_listing(wanted)


def _train_listing(root: Path) -> dict[str, int] | None:
    """Class folder -> number of files of ``root/train`` (``root`` itself if it has no
    ``train/``), or None if it cannot be listed."""
    folder = root / "train" if (root / "train").is_dir() else root
    try:
        return {
            entry.name: sum(1 for f in os.scandir(entry.path) if f.is_file())
            for entry in os.scandir(folder)
            if entry.is_dir()
        }
    except OSError:
        return None
