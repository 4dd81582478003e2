"""Feature extraction with an on-disk cache: the backbone runs once per (model, dataset, split).

For each image we store the backbone features and, for SEM models, the pre-softmax SEM logits
(after the embedder's BatchNorm, in eval mode). Any temperature is applied later on the cached
logits (:meth:`FeatureSet.sem`), so a tau sweep never re-runs the backbone.

Cache layout: ``<cache_dir>/<key-hash>/`` holding ``features.npy``, ``logits.npy`` (SEM models),
``labels.npy`` and ``manifest.json`` (model fingerprint, dataset and its file fingerprint, split,
transform, shapes, dtype, semprobe version). The directory is built under a temporary name and
renamed into place only once every file is complete and fsynced, so a killed extraction (or a
killed rank of a distributed one) never leaves a directory that a later run takes as valid.
Arrays are preallocated and written by rows (:mod:`semprobe.npyrows`), so memory stays bounded
by one batch whatever the dataset size, and the ranks of a distributed extraction
(:mod:`semprobe.shards`) write one cache that is byte for byte a single process's.

Concurrent runs that need the same entry take its lock in turn (:mod:`semprobe.locks`): one
extracts, the others wait and then read what it wrote; a complete entry is never replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semprobe import __version__, distributed
from semprobe.atomic import (
    atomic_directory,
    atomic_path,
    ensure_writable_dir,
    remove_dead_leftovers,
    write_json,
)
from semprobe.data import describe_transform
from semprobe.errors import CacheError, SemprobeError
from semprobe.images import LabeledImages
from semprobe.locks import holding
from semprobe.model import SEMModel, state_fingerprint
from semprobe.npyrows import RowFile
from semprobe.sem import sem_softmax
from semprobe.shards import Layout, extract_rows, run_sharded
from semprobe.validation import check_tau

MANIFEST = "manifest.json"
DTYPES = {"float16": np.float16, "float32": np.float32}
# Above this many bytes (as float32) SEM features are written to a derived cache file rather than
# held in memory.
IN_MEMORY_LIMIT = 2 * 1024**3


@dataclass
class FeatureSet:
    """Cached features of one (model, dataset, split), memory-mapped read-only.

    Attributes
    ----------
    directory: the cache directory.
    manifest: the parsed ``manifest.json``.
    features: ``(N, D)`` backbone features.
    logits: ``(N, L*V)`` pre-softmax SEM logits, or None for a model without embedder.
    labels: ``(N,)`` class indices.
    """

    directory: Path
    manifest: dict[str, Any]
    features: np.ndarray
    logits: np.ndarray | None
    labels: np.ndarray

    @property
    def num_simplices(self) -> int:
        return int(self.manifest["model"]["num_simplices"])

    @property
    def vocab(self) -> int:
        return int(self.manifest["model"]["vocab"])

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["dataset"]["class_names"])

    @property
    def superclass_of(self) -> dict[str, str] | None:
        return self.manifest["dataset"].get("superclass_of")

    @property
    def transform(self) -> str:
        """The evaluation transform the images went through, in words."""
        return str(self.manifest["key"]["transform"])

    @property
    def excluded(self) -> list[str]:
        """The images left out as unreadable (``--skip-unreadable``): ``file: reason``."""
        return list(self.manifest["dataset"].get("excluded", []))

    def require_logits(self, what: str = "this analysis") -> np.ndarray:
        """The SEM logits, or a clear error for a model without SEM embedder."""
        if self.logits is None:
            raise SemprobeError(
                f"{what} needs SEM logits, but the model has no SEM embedder (a baseline); "
                "use its backbone features instead"
            )
        return self.logits

    def sem(self, tau: float, chunk_rows: int = 4096) -> np.ndarray:
        """SEM features ``softmax(z_i / tau)`` for every sample, as float32 ``(N, L*V)``.

        Small results are computed in memory; results larger than 2 GB (as float32) are
        written once as float16 to ``sem_tau<tau>.npy`` in the cache directory and memory-mapped.
        """
        tau = check_tau(tau)
        logits = self.require_logits("SEM features")
        n, width = logits.shape
        if n * width * 4 <= IN_MEMORY_LIMIT:
            out = np.empty((n, width), dtype=np.float32)
            for start in range(0, n, chunk_rows):
                block = torch.from_numpy(np.array(logits[start : start + chunk_rows], np.float32))
                out[start : start + chunk_rows] = sem_softmax(
                    block.float(), self.num_simplices, self.vocab, tau
                ).numpy()
            return out
        derived = self.directory / f"sem_tau{tau:g}.npy"
        # The entry's lock: two runs needing the same derived file write it once.
        with holding(self.directory, "feature cache"):
            if not derived.exists():
                with atomic_path(derived, suffix=".npy") as tmp:
                    RowFile.create(tmp, (n, width), np.float16)
                    with RowFile(tmp, (n, width), np.float16) as writer:
                        for start in range(0, n, chunk_rows):
                            block = torch.from_numpy(
                                np.array(logits[start : start + chunk_rows], np.float32)
                            )
                            probs = sem_softmax(block, self.num_simplices, self.vocab, tau)
                            writer.write(start, probs.numpy())
        return np.load(derived, mmap_mode="r")


def cache_key(model: SEMModel, dataset: LabeledImages, dtype: str, fingerprint: str) -> dict:
    """Everything that determines the cached arrays; equal keys mean reusable caches."""
    spec = model.spec
    return {
        "model_fingerprint": fingerprint,
        "model": {
            "backbone": spec.backbone,
            "cifar_stem": spec.cifar_stem,
            "num_simplices": spec.num_simplices,
            "vocab": spec.vocab,
        },
        "dataset": dataset.key,
        # The files' names, sizes and times (folders), and which were left out as unreadable.
        "dataset_fingerprint": dataset.fingerprint,
        "split": dataset.split,
        "n_samples": len(dataset),
        "transform": describe_transform(dataset.transform),
        "dtype": dtype,
    }


def entry_directory(cache_dir: Path, key: dict) -> Path:
    """The cache entry of ``key`` under ``cache_dir`` (it may not exist yet)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    split = key["split"]
    return cache_dir / f"{key['model_fingerprint'][:12]}-{split}-{digest}"


def open_cache(directory: str | os.PathLike[str], key: dict | None = None) -> FeatureSet | None:
    """Open a complete cache directory, or return None if it is absent, partial or stale.

    ``key``, when given, must equal the manifest's key; array files must have the shapes and dtype
    the manifest records.
    """
    folder = Path(directory)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(manifest, dict) or not manifest.get("complete"):
        return None
    if key is not None and manifest.get("key") != key:
        return None
    try:
        arrays = {}
        for name, shape in manifest["shapes"].items():
            arr = np.load(folder / f"{name}.npy", mmap_mode="r")
            if list(arr.shape) != list(shape):
                return None
            arrays[name] = arr
        return FeatureSet(
            folder,
            manifest,
            arrays["features"],
            arrays.get("logits"),
            np.asarray(arrays["labels"]),
        )
    except (OSError, ValueError, KeyError):
        return None


def extract_features(
    model: SEMModel,
    dataset: LabeledImages,
    cache_dir: str | os.PathLike[str],
    dtype: str = "float32",
    batch_size: int = 256,
    num_workers: int = 0,
    device: str = "cpu",
    progress: bool = True,
    fingerprint: str | None = None,
    say: Callable[[str], None] | None = None,
) -> FeatureSet:
    """Extract (or reuse) the features of ``model`` on ``dataset``.

    In a distributed session (``torchrun``, see :mod:`semprobe.distributed`) every rank extracts
    its shard into the same cache, which must then be on a file system all ranks share.

    Parameters
    ----------
    model:
        The model; put in eval mode for extraction.
    dataset:
        A :class:`~semprobe.images.LabeledImages` whose ``transform`` yields normalised tensors.
    cache_dir:
        Root of the feature cache; one sub-directory per cache key.
    dtype:
        ``float32`` or ``float16`` storage.
    batch_size, num_workers, device:
        DataLoader and device settings (``cpu``, ``cuda``, ``cuda:1``...).
    progress:
        Show a progress bar.
    fingerprint:
        :func:`state_fingerprint` of ``model`` if already known (it hashes every weight).
    say:
        Called with one line when another process holds the entry (e.g. ``print``).

    Returns
    -------
    FeatureSet
        The cached arrays, memory-mapped.
    """
    if dtype not in DTYPES:
        raise SemprobeError(f"unknown feature dtype {dtype!r}; choose float16 or float32")
    if batch_size < 1:
        raise SemprobeError(f"batch size must be >= 1, got {batch_size}")
    root = Path(cache_dir)
    try:
        ensure_writable_dir(root)
    except SemprobeError as exc:
        raise CacheError(f"feature cache: {exc}") from None
    fingerprint = fingerprint or state_fingerprint(model)
    key = cache_key(model, dataset, dtype, fingerprint)
    final = entry_directory(root, key)
    cached = open_cache(final, key)
    if cached is not None:
        return cached
    with holding(final, "feature cache", say):
        cached = open_cache(final, key)  # another process may have written it meanwhile
        if cached is not None:
            return cached
        remove_dead_leftovers(final, "tmp")  # partial caches of killed extractions
        # An invalid leftover under the final name (edited by hand, say) stays until the new
        # cache replaces it.
        with atomic_directory(final, tag="tmp", what="feature cache", error=CacheError) as work:
            _extract_into(
                model, dataset, work, key, dtype, (batch_size, num_workers, device), progress, say
            )
    result = open_cache(final, key)
    if result is None:  # pragma: no cover - would mean the file system lost our writes
        raise CacheError(f"feature cache {final} could not be read back")
    return result


def _extract_into(
    model: SEMModel,
    dataset: LabeledImages,
    folder: Path,
    key: dict,
    dtype: str,
    loop: tuple[int, int, str],
    progress: bool,
    say: Callable[[str], None] | None,
) -> None:
    """Every file of the cache entry ``folder``; ``loop`` is (batch size, workers, device)."""
    batch_size, num_workers, device = loop
    n, spec = len(dataset), model.spec
    widths = {"features": model.feat_dim}
    if spec.has_sem:
        widths["logits"] = spec.sem_width
    layout = Layout(n, widths, dtype)
    for name in widths:  # reserved in full now: a full disk fails before any work
        RowFile.create(folder / f"{name}.npy", layout.shape(name), dtype)
    RowFile.create(folder / "labels.npy", (n,), np.int64)
    with RowFile(folder / "labels.npy", (n,), np.int64) as labels:
        labels.write(0, dataset.labels)
    session = distributed.current()
    if session is not None and session.world_size > 1:
        if say is not None:
            say(f"extract {dataset.split}: {n} images over {session.world_size} processes")
        run_sharded(
            session, model, dataset, folder, layout, batch_size, num_workers, device, progress
        )
    else:
        rows, desc = (0, n), f"extract {dataset.split}"
        extract_rows(
            model, dataset, folder, layout, rows, batch_size, num_workers, device, progress, desc
        )
    shapes: dict[str, list[int]] = {name: list(layout.shape(name)) for name in widths}
    shapes["labels"] = [n]
    # atomic_directory fsyncs every file before the swap; the manifest, written last, marks the
    # directory complete.
    write_json(folder / MANIFEST, _manifest(key, dataset, shapes, DTYPES[dtype]))


def _manifest(
    key: dict, dataset: LabeledImages, shapes: dict[str, list[int]], dtype: Any
) -> dict[str, Any]:
    """The cache's ``manifest.json``: written last, it marks the directory complete."""
    return {
        "complete": True,
        "created_by": f"semprobe {__version__}",
        "key": key,
        "model": key["model"],
        "dataset": {
            "name": dataset.key,
            "split": dataset.split,
            "class_names": dataset.class_names,
            "superclass_of": dataset.superclass_of,
            "excluded": [dataset.excluded[i] for i in sorted(dataset.excluded)],
        },
        "transform": _transform_record(dataset.transform),
        "shapes": shapes,
        "dtype": np.dtype(dtype).name,
    }


def _transform_record(transform: Any) -> dict[str, Any]:
    if hasattr(transform, "to_dict"):
        return dict(transform.to_dict())
    return {"description": describe_transform(transform)}
