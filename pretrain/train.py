"""Run a pre-training: data, module, Lightning ``Trainer``, checkpoints, resume checks.

Everything a training loop does (devices, DDP under torchrun or SLURM, sync batch norm, mixed
precision, gradient clipping, progress bar, logging, periodic checkpoints, resuming) is
Lightning's; this module only wires it up. Output directory layout::

    OUT/checkpoints/stepNNNNNNN.ckpt   every --checkpoint-every epochs (the latest, or all)
    OUT/checkpoints/last.ckpt          the newest checkpoint written (periodic or final)
    OUT/final.ckpt                     at the end
    OUT/csv/version_K/metrics.csv      CSVLogger
    OUT/tensorboard/version_K/         TensorBoardLogger

Every ``.ckpt`` is both a semprobe model checkpoint and a Lightning resume checkpoint (see
:mod:`semprobe.pretrain.checkpoint_io`), so ``--resume OUT/checkpoints/last.ckpt`` continues any
run, killed or finished. ``last.ckpt`` is a second name of the newest file (a hard link, or a copy
where the file system has none), swapped in atomically after that file is complete: a run killed
at any moment leaves it naming a whole checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from semprobe.atomic import ensure_writable_dir
from semprobe.checkpoint import FORMAT_NAME, read_checkpoint
from semprobe.data import LabeledImages, default_root, open_dataset
from semprobe.errors import SemprobeError
from semprobe.model import ModelSpec
from semprobe.pretrain.augment import two_view_transform
from semprobe.pretrain.base import SSLMethod
from semprobe.pretrain.checkpoint_io import LAST_NAME, PeriodicCheckpoint, SemprobeCheckpointIO
from semprobe.pretrain.config import PretrainConfig, dataset_kind
from semprobe.pretrain.data import PretrainData
from semprobe.pretrain.optim import OptimSettings
from semprobe.pretrain.registry import method_class

# Options that fix the shapes of the saved state: a resumed run must agree on all of them.
ARCHITECTURE_KEYS = (
    "method",
    "sem",
    "backbone",
    "cifar_stem",
    "num_simplices",
    "vocab",
    "proj_hidden_dim",
    "proj_output_dim",
    "pred_hidden_dim",
    "queue_size",
    "num_prototypes",
    "online_taus",
    "dataset",
)
FINAL_NAME = "final.ckpt"
T = TypeVar("T")


def as_config(config: PretrainConfig | Mapping[str, Any]) -> PretrainConfig:
    """Resolve and validate a configuration.

    Parameters
    ----------
    config:
        A :class:`PretrainConfig` or a mapping of option names (``-`` or ``_``).

    Returns
    -------
    PretrainConfig
        With every default filled in for its (method, dataset).
    """
    if not isinstance(config, PretrainConfig):
        config = PretrainConfig.from_dict(config)
    return config.resolved()


def model_spec(cfg: PretrainConfig) -> ModelSpec:
    """The spec of the analysed encoder that ``cfg`` trains."""
    num_simplices, vocab = cfg.sem_shape
    return ModelSpec(
        backbone=str(cfg.backbone),
        cifar_stem=cfg.cifar_stem,
        num_simplices=num_simplices,
        vocab=vocab,
        tau=_resolved(cfg.tau_online),
        tau_target=_resolved(cfg.tau_target),
        method=cfg.method,
        dataset=cfg.dataset,
    )


def _resolved(value: T | None) -> T:
    """A field that :meth:`PretrainConfig.resolved` has filled in."""
    if value is None:
        raise ValueError("unresolved option: call PretrainConfig.resolved() first")
    return value


def effective_lr(cfg: PretrainConfig, world_size: int) -> float:
    """The learning rate actually used: ``lr x batch_size x world_size / 256`` (solo-learn).

    Parameters
    ----------
    cfg:
        A resolved configuration.
    world_size:
        Number of training processes (devices x nodes).
    """
    return _resolved(cfg.lr) * _resolved(cfg.batch_size) * world_size / 256


def build_module(cfg: PretrainConfig, num_classes: int, world_size: int = 1) -> SSLMethod:
    """The LightningModule of a configuration, randomly initialised from the global RNG.

    Parameters
    ----------
    cfg:
        A resolved configuration.
    num_classes:
        Labels of the training set (for the online classifiers).
    world_size:
        Number of training processes, for the learning-rate scaling.

    Returns
    -------
    SSLMethod
        The class of ``cfg.method`` (:func:`semprobe.pretrain.registry.method_class`).
    """
    cls = method_class(cfg.method)
    scale = _resolved(cfg.batch_size) * world_size / 256
    optim = OptimSettings(
        name=_resolved(cfg.optimizer),
        lr=effective_lr(cfg, world_size),
        classifier_lr=_resolved(cfg.classifier_lr) * scale,
        weight_decay=_resolved(cfg.weight_decay),
        warmup_epochs=_resolved(cfg.warmup_epochs),
        lars_eta=cfg.lars_eta,
        exclude_bias_norm=cls.EXCLUDE_BIAS_NORM,
        min_lr_ratio=cls.MIN_LR_RATIO,
    )
    return cls(model_spec(cfg), num_classes, optim=optim, **cls.options(cfg))


def _describe(value: Any) -> str:
    return "absent" if value is None else repr(value)


def check_resume(cfg: PretrainConfig, path: Path) -> None:
    """Refuse a ``--resume`` checkpoint that is missing or does not fit the configuration.

    Parameters
    ----------
    cfg:
        The resolved configuration of the resumed run.
    path:
        The checkpoint to resume.

    Raises
    ------
    SemprobeError
        One line naming every architecture option (:data:`ARCHITECTURE_KEYS`) that differs,
        with L*V first when it differs; or saying why the file is not a resume point.
    """
    if not path.is_file():
        raise SemprobeError(f"--resume {path}: no such checkpoint file")
    raw = read_checkpoint(path)
    meta = raw.get("semprobe_meta") if isinstance(raw, Mapping) else None
    saved = meta.get("pretrain_config") if isinstance(meta, Mapping) else None
    if raw.get("semprobe_format") != FORMAT_NAME or not isinstance(saved, Mapping):
        raise SemprobeError(
            f"--resume {path}: not a checkpoint written by semprobe pretrain (no training state)"
        )
    if "optimizer_states" not in raw or "loops" not in raw:
        raise SemprobeError(f"--resume {path}: the checkpoint holds no optimiser or loop state")
    mine = cfg.to_dict()
    if not saved.get("sem", True):  # L and V are irrelevant without SEM
        saved = {**saved, "num_simplices": mine["num_simplices"], "vocab": mine["vocab"]}
    if not mine["sem"]:
        mine = {**mine, "num_simplices": saved.get("num_simplices"), "vocab": saved.get("vocab")}
    differences = [
        f"{key} {_describe(saved.get(key))} in the checkpoint vs {mine[key]!r} in the config"
        for key in ARCHITECTURE_KEYS
        if saved.get(key) != mine[key]
    ]
    if not differences:
        return
    shapes = ""
    if mine["sem"] and saved.get("sem"):
        before = (saved.get("num_simplices") or 0) * (saved.get("vocab") or 0)
        after = mine["num_simplices"] * mine["vocab"]
        if before != after:
            shapes = f"L*V = {before} in the checkpoint vs {after} in the config; "
    raise SemprobeError(
        f"--resume {path} does not match the configuration: {shapes}" + "; ".join(differences)
    )


def open_train_split(cfg: PretrainConfig) -> LabeledImages:
    """The training images, without transform.

    Under torchrun or SLURM every process starts at once; a file lock beside the data makes one
    of them download CIFAR while the others wait, then find it complete.
    """
    if not cfg.download or dataset_kind(cfg.dataset) not in ("cifar10", "cifar100"):
        return open_dataset(cfg.dataset, "train", cfg.data_root, cfg.download)
    from filelock import FileLock

    root = ensure_writable_dir(Path(cfg.data_root) if cfg.data_root else default_root())
    with FileLock(str(root / f".{cfg.dataset}.download.lock")):
        return open_dataset(cfg.dataset, "train", root, cfg.download)


def _check_output_dir(cfg: PretrainConfig) -> None:
    """A fresh run must not overwrite the checkpoints of another one."""
    out = cfg.out_dir
    if cfg.resume is not None:
        return
    existing = [out / FINAL_NAME, *sorted((out / "checkpoints").glob("*.ckpt"))]
    found = [p for p in existing if p.exists()]
    if found:
        last = out / "checkpoints" / LAST_NAME
        raise SemprobeError(
            f"{out} already holds checkpoints ({found[0].name}); choose another --out or "
            f"--resume {last if last.exists() else found[-1]}"
        )


def _parse_devices(text: str) -> int | str | list[int]:
    """``--devices``: ``auto``, a count (``-1``: all) or a comma-separated list of indices."""
    text = str(text).strip()
    if text == "auto":
        return text
    try:
        if "," in text:
            return [int(t) for t in text.split(",") if t.strip()]
        return int(text)
    except ValueError:
        raise SemprobeError(f"--devices must be auto, N or a list like 0,1; got {text!r}") from None


def _strategy(cfg: PretrainConfig, devices: int | str | list[int]) -> str:
    many = cfg.num_nodes > 1 or (isinstance(devices, list) and len(devices) > 1)
    many = many or (isinstance(devices, int) and (devices > 1 or devices == -1))
    return "ddp" if cfg.strategy == "auto" and many else cfg.strategy


@contextlib.contextmanager
def _process_settings(threads: int) -> Iterator[None]:
    """Set the thread count for the run; undo it and ``Trainer(deterministic=True)`` after."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.set_num_threads(previous_threads)


def build_trainer(
    cfg: PretrainConfig, checkpoint_io: SemprobeCheckpointIO, callbacks: Sequence[Callback] = ()
) -> Trainer:
    """The Lightning ``Trainer`` of a configuration.

    Parameters
    ----------
    cfg:
        A resolved configuration.
    checkpoint_io:
        Writes and reads every checkpoint (semprobe format, atomic, weights-only).
    callbacks:
        Added after the periodic checkpoint and the learning-rate monitor.

    Raises
    ------
    SemprobeError
        Device, strategy or precision settings that Lightning refuses.
    """
    out = cfg.out_dir
    devices = _parse_devices(cfg.devices)
    periodic = PeriodicCheckpoint(
        dirpath=out / "checkpoints",
        filename="step{step:07d}",
        auto_insert_metric_name=False,
        every_n_epochs=cfg.checkpoint_every,
        save_top_k=-1 if cfg.keep_all_checkpoints else 1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    try:
        trainer = Trainer(
            accelerator=cfg.accelerator,
            devices=devices,
            num_nodes=cfg.num_nodes,
            strategy=_strategy(cfg, devices),
            sync_batchnorm=cfg.sync_batchnorm,
            precision=cfg.precision,  # type: ignore[arg-type]
            max_epochs=cfg.epochs,
            max_steps=cfg.max_steps,
            gradient_clip_val=cfg.grad_clip or None,
            deterministic=cfg.deterministic or None,
            benchmark=not cfg.deterministic,  # cuDNN autotuning; ignored on CPUs
            enable_progress_bar=cfg.progress,
            enable_model_summary=False,
            log_every_n_steps=cfg.log_every,
            logger=[CSVLogger(out, name="csv"), TensorBoardLogger(out, name="tensorboard")],
            callbacks=[periodic, LearningRateMonitor(logging_interval="step"), *callbacks],
            plugins=[checkpoint_io],
            default_root_dir=out,
            use_distributed_sampler=False,  # pretrain.data.EpochSampler shards itself
            num_sanity_val_steps=0,
            limit_val_batches=0,
        )
    except (ValueError, TypeError, RuntimeError, ImportError, MisconfigurationException) as exc:
        raise SemprobeError(f"cannot set up training: {str(exc).splitlines()[0]}") from None
    if cfg.sync_batchnorm and isinstance(trainer.accelerator, CPUAccelerator):
        raise SemprobeError("--sync-batchnorm needs GPUs (PyTorch's SyncBatchNorm is GPU-only)")
    return trainer


def run(config: PretrainConfig | Mapping[str, Any], callbacks: Sequence[Callback] = ()) -> Path:
    """Pre-train the configured model and return the path of its final checkpoint.

    Parameters
    ----------
    config:
        A :class:`PretrainConfig` or a mapping of option names (defaults filled per method and
        dataset).
    callbacks:
        Extra Lightning callbacks.

    Returns
    -------
    Path
        ``OUT/final.ckpt``, loadable with :func:`semprobe.checkpoint.load_model` and resumable.

    Raises
    ------
    SemprobeError
        Bad options, a dataset that cannot be opened, a resume checkpoint that is missing or does
        not fit, a non-finite loss (the last periodic checkpoint is kept).
    """
    cfg = as_config(config)
    resume = Path(cfg.resume) if cfg.resume is not None else None
    # Every check comes before anything is written.
    if resume is not None:
        check_resume(cfg, resume)
    _check_output_dir(cfg)
    images = open_train_split(cfg)
    transform = two_view_transform(cfg.method, cfg.image_size)
    batch_size, workers = _resolved(cfg.batch_size), _resolved(cfg.workers)
    data = PretrainData(images, transform, batch_size, workers, cfg.seed)
    with _process_settings(cfg.threads), warnings.catch_warnings():
        # Lightning's hints about worker counts and logging intervals are noise for small runs.
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*is deprecated.*")
        warnings.filterwarnings("ignore", ".*worker processes in total.*")
        if not cfg.progress:
            # Quiet runs (the demo, studies) print only what they are asked for: no banners.
            logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
        if resume is not None:  # resuming into the run's own directory is the normal case
            warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
        seed_everything(cfg.seed, workers=False, verbose=False)
        meta = {"pretrain_config": cfg.to_dict(), "num_classes": len(images.class_names)}
        io = SemprobeCheckpointIO(model_spec(cfg), meta)
        trainer = build_trainer(cfg, io, callbacks)
        module = build_module(cfg, len(images.class_names), trainer.world_size)
        trainer.fit(module, datamodule=data, ckpt_path=str(resume) if resume else None)
        final = cfg.out_dir / FINAL_NAME
        trainer.save_checkpoint(final, weights_only=False)
        periodic = trainer.checkpoint_callback
        if trainer.is_global_zero and isinstance(periodic, PeriodicCheckpoint):
            periodic.point_last_at(final)
    return final
