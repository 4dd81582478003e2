"""Feature extraction with an on-disk cache: the backbone runs once per (model, dataset, split).

For each image we store the backbone features and, for SEM models, the pre-softmax SEM logits
(after the embedder's BatchNorm, in eval mode). Any temperature is applied later on the cached
logits (:meth:`FeatureSet.sem`), so a tau sweep never re-runs the backbone.

Cache layout: ``<cache_dir>/<key-hash>/`` holding ``features.npy``, ``logits.npy`` (SEM models),
``labels.npy`` and ``manifest.json`` (model fingerprint, dataset, split, transform, shapes, dtype,
semprobe version). The directory is built under a temporary name and renamed into place only
once every file is complete and fsynced, so a killed extraction never leaves a directory that a
later run takes as valid. Arrays are written with plain appends, not memory maps, so memory stays
bounded by one batch whatever the dataset size.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from semprobe import __version__
from semprobe.atomic import (
    atomic_directory,
    atomic_path,
    ensure_writable_dir,
    remove_dead_leftovers,
    write_json,
)
from semprobe.data import LabeledImages, describe_transform
from semprobe.errors import CacheError, SemprobeError
from semprobe.model import SEMModel, state_fingerprint
from semprobe.sem import sem_softmax
from semprobe.validation import check_tau

MANIFEST = "manifest.json"
DTYPES = {"float16": np.float16, "float32": np.float32}
# Above this many bytes (as float32) SEM features are written to a derived cache file rather than
# held in memory.
IN_MEMORY_LIMIT = 2 * 1024**3


class _NpyAppender:
    """Write a ``.npy`` of known shape by appending rows, without a memory map."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.handle: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": shape,
        }
        np.lib.format.write_array_header_2_0(self.handle, header)
        self.rows_expected = shape[0]
        self.rows = 0

    def append(self, block: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows += len(block)

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        if self.rows != self.rows_expected:
            raise CacheError(f"{self.path}: wrote {self.rows} rows, expected {self.rows_expected}")


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
        if not derived.exists():
            with atomic_path(derived, suffix=".npy") as tmp:
                writer = _NpyAppender(tmp, (n, width), np.dtype(np.float16))
                try:
                    for start in range(0, n, chunk_rows):
                        block = torch.from_numpy(
                            np.array(logits[start : start + chunk_rows], np.float32)
                        )
                        probs = sem_softmax(block.float(), self.num_simplices, self.vocab, tau)
                        writer.append(probs.numpy())
                except BaseException:
                    writer.handle.close()
                    raise
                writer.close()
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
        "split": dataset.split,
        "n_samples": len(dataset),
        "transform": describe_transform(dataset.transform),
        "dtype": dtype,
    }


def _key_dir(cache_dir: Path, key: dict) -> Path:
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
) -> FeatureSet:
    """Extract (or reuse) the features of ``model`` on ``dataset``.

    Parameters
    ----------
    model:
        The model; put in eval mode for extraction.
    dataset:
        A :class:`LabeledImages` whose ``transform`` yields normalised tensors.
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
    final = _key_dir(root, key)
    cached = open_cache(final, key)
    if cached is not None:
        return cached
    remove_dead_leftovers(final, "tmp")  # partial caches of killed extractions
    # An invalid leftover under the final name (edited by hand, say) stays until the new cache
    # replaces it.
    with atomic_directory(final, tag="tmp", what="feature cache", error=CacheError) as partial:
        _extract_into(
            model, dataset, partial, key, DTYPES[dtype], batch_size, num_workers, device, progress
        )
    result = open_cache(final, key)
    if result is None:  # pragma: no cover - would mean the file system lost our writes
        raise CacheError(f"feature cache {final} could not be read back")
    return result


@torch.no_grad()
def _extract_into(
    model: SEMModel,
    dataset: LabeledImages,
    folder: Path,
    key: dict,
    dtype: Any,
    batch_size: int,
    num_workers: int,
    device: str,
    progress: bool,
) -> None:
    dev = _torch_device(device)
    model = model.to(dev).eval()
    n = len(dataset)
    spec = model.spec
    shapes: dict[str, list[int]] = {"features": [n, model.feat_dim], "labels": [n]}
    writers = {"features": _NpyAppender(folder / "features.npy", (n, model.feat_dim), dtype)}
    if spec.has_sem:
        shapes["logits"] = [n, spec.sem_width]
        writers["logits"] = _NpyAppender(folder / "logits.npy", (n, spec.sem_width), dtype)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
    )
    labels = np.empty(n, dtype=np.int64)
    row = 0
    try:
        bar = tqdm(total=n, desc=f"extract {dataset.split}", unit="img", disable=not progress)
        for images, targets in loader:
            feats, logits = model.features_and_logits(images.to(dev, non_blocking=True))
            writers["features"].append(feats.float().cpu().numpy())
            if logits is not None:
                writers["logits"].append(logits.float().cpu().numpy())
            labels[row : row + len(targets)] = targets.numpy()
            row += len(targets)
            bar.update(len(targets))
        bar.close()
    finally:
        for writer in writers.values():
            if not writer.handle.closed:
                writer.handle.close() if row != n else writer.close()
    np.save(folder / "labels.npy", labels)  # atomic_directory fsyncs every file before the swap
    write_json(folder / MANIFEST, _manifest(key, dataset, shapes, dtype))


def _torch_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise SemprobeError(f"bad device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SemprobeError(f"device {device!r} requested but CUDA is not available")
    return dev


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
        },
        "shapes": shapes,
        "dtype": np.dtype(dtype).name,
    }
