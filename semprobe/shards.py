"""The extraction loop: rows ``[start, stop)`` of a dataset through a model into the cache files.

One process runs it over every row. In a distributed session (:mod:`semprobe.distributed`) the
leader hands each rank a contiguous range of whole batches (:func:`shard_rows`) with the model's
weights, every rank writes its rows into the same preallocated files (:mod:`semprobe.npyrows`),
and the leader finishes the cache only when every rank has reported success. The batches are the
single process's batches, cut at the same rows, so each row is computed exactly as it would be
in one process and the files are byte for byte the same.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from semprobe.data import open_dataset
from semprobe.distributed import Session
from semprobe.errors import CacheError, DatasetError, SemprobeError
from semprobe.images import LabeledImages
from semprobe.model import ModelSpec, SEMModel
from semprobe.npyrows import RowFile


@dataclass(frozen=True)
class Layout:
    """The cache's model arrays: rows, ``name -> width``, storage dtype."""

    rows: int
    widths: dict[str, int]
    dtype: str

    def shape(self, name: str) -> tuple[int, int]:
        return self.rows, self.widths[name]


def shard_rows(rows: int, batch_size: int, world_size: int, rank: int) -> tuple[int, int]:
    """Rank ``rank``'s rows: a contiguous run of whole batches, as even as batches allow.

    Examples
    --------
    >>> [shard_rows(10, 3, 2, r) for r in range(2)]
    [(0, 6), (6, 10)]
    """
    batches = -(-rows // batch_size)
    per_rank = -(-batches // world_size)
    start = min(rank * per_rank * batch_size, rows)
    return start, min(start + per_rank * batch_size, rows)


def torch_device(device: str) -> torch.device:
    """``device`` as a torch device, or a clear error for a bad or unavailable one."""
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise SemprobeError(f"bad device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SemprobeError(f"device {device!r} requested but CUDA is not available")
    return dev


class _Items(Dataset):
    """``(index, tensor, None)``, or ``(index, None, message)`` for an unreadable image: the
    message is raised in the main process (an exception raised in a DataLoader worker comes
    back as a multi-line traceback)."""

    def __init__(self, images: LabeledImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[int, Any, str | None]:
        try:
            tensor, _ = self.images[index]
        except DatasetError as exc:
            return index, None, str(exc)
        return index, tensor, None


@dataclass(frozen=True)
class _Failure:
    """A batch that cannot be stacked: an unreadable image, or images of different sizes."""

    message: str | None = None
    sizes: tuple[tuple[int, tuple[int, ...]], ...] = ()

    def text(self, images: LabeledImages) -> str:
        if self.message is not None:
            return self.message
        (a, size_a), (b, size_b) = self.sizes
        return (
            f"images of different sizes reach the model: {images.name_of(a)} is "
            f"{_size(size_a)} and {images.name_of(b)} is {_size(size_b)}; resize them "
            "(drop --resize none, or give --resize N)"
        )


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[-1]}x{shape[-2]} px"


def _collate(items: list[tuple[int, Any, str | None]]) -> Any:
    for _, _, message in items:
        if message is not None:
            return _Failure(message)
    shapes = [(i, tuple(t.shape)) for i, t, _ in items]
    different = [s for s in shapes if s[1] != shapes[0][1]]
    if different:
        return _Failure(sizes=(shapes[0], different[0]))
    return torch.tensor([i for i, _, _ in items]), torch.stack([t for _, t, _ in items])


@torch.no_grad()
def extract_rows(
    model: SEMModel,
    images: LabeledImages,
    folder: Path,
    layout: Layout,
    rows: tuple[int, int],
    batch_size: int,
    workers: int,
    device: str,
    progress: bool,
    desc: str,
) -> None:
    """Features (and SEM logits) of ``images[start:stop]`` into the files of ``folder``."""
    dev = torch_device(device)
    model = model.to(dev).eval()
    start, stop = rows
    files = {
        name: RowFile(folder / f"{name}.npy", layout.shape(name), layout.dtype)
        for name in layout.widths
    }
    loader = DataLoader(
        Subset(_Items(images), range(start, stop)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=dev.type == "cuda",
        collate_fn=_collate,
    )
    done = False
    try:
        with tqdm(total=stop - start, desc=desc, unit="img", disable=not progress) as bar:
            for batch in loader:
                if isinstance(batch, _Failure):
                    raise DatasetError(batch.text(images))
                indices, pixels = batch
                feats, logits = model.features_and_logits(pixels.to(dev, non_blocking=True))
                row = int(indices[0])  # a batch is a contiguous run of rows
                files["features"].write(row, feats.float().cpu().numpy())
                if logits is not None:
                    files["logits"].write(row, logits.float().cpu().numpy())
                bar.update(len(indices))
        done = True
    finally:
        for file in files.values():
            file.close(sync=done)


def _attempt(rank: int, work: Callable[[], None]) -> str | None:
    """Run ``work``; its error as one line (prefixed with the rank), or None."""
    try:
        work()
    except SemprobeError as exc:
        return f"rank {rank}: {exc}"
    except Exception as exc:  # a bug or a device failure on that rank: report, do not hang
        return f"rank {rank}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return None


def _check_shareable(images: LabeledImages) -> None:
    """Other processes must be able to open the same images with the same transform."""
    if images.open_args is None:
        raise SemprobeError(
            "a distributed extraction needs a dataset opened by semprobe.data.open_dataset"
        )
    try:
        pickle.dumps(images.transform)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise SemprobeError(
            f"a distributed extraction needs a picklable transform: {exc}"
        ) from None


def run_sharded(
    session: Session,
    model: SEMModel,
    images: LabeledImages,
    folder: Path,
    layout: Layout,
    batch_size: int,
    workers: int,
    device: str,
    progress: bool,
) -> None:
    """The leader's side: hand out the shards and weights, extract shard 0, collect reports."""
    _check_shareable(images)
    state = model.state_dict()
    names = sorted(state)
    session.broadcast_object(
        {
            "op": "extract",
            "spec": model.spec.to_dict(),
            "names": names,
            "open_args": images.open_args,
            "excluded": sorted(images.excluded),
            "transform": images.transform,
            "identity": [images.key, images.fingerprint, len(images)],
            "folder": str(folder),
            "layout": layout,
            "batch_size": batch_size,
            "workers": workers,
            "device": device,
        }
    )
    session.broadcast_tensors([state[name].detach().cpu().contiguous() for name in names])
    rows = shard_rows(layout.rows, batch_size, session.world_size, 0)
    desc = f"extract {images.split} (rank 0 of {session.world_size})"
    loop = (batch_size, workers, session.device(device))
    mine = _attempt(
        0, lambda: extract_rows(model, images, folder, layout, rows, *loop, progress, desc)
    )
    failures = [report for report in session.gather_objects(mine) if report]
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise SemprobeError(failures[0] + more)


def serve_extract(session: Session, request: dict[str, Any]) -> None:
    """A worker's side of :func:`run_sharded`: receive the weights, extract its shard, report."""
    spec = ModelSpec.from_dict(dict(request["spec"]))
    with torch.device("meta"):
        model = SEMModel(spec)
    model = model.to_empty(device="cpu")
    state = model.state_dict()
    session.broadcast_tensors([state[name] for name in request["names"]])
    report = _attempt(session.rank, lambda: _worker_shard(session, model.eval(), request))
    session.gather_objects(report)


def _worker_shard(session: Session, model: SEMModel, request: dict[str, Any]) -> None:
    folder = Path(request["folder"])
    if not folder.is_dir():
        raise CacheError(
            f"cannot see the cache directory {folder}: --cache-dir must be on a file system "
            "that every process of the job shares"
        )
    args = request["open_args"]
    images = open_dataset(
        args["name"], args["split"], args["root"], download=False, transform=request["transform"]
    )
    images = images.without(dict.fromkeys(request["excluded"], ""))
    if [images.key, images.fingerprint, len(images)] != request["identity"]:
        raise DatasetError(
            f"sees a different {args['name']} {args['split']} split than rank 0 "
            f"({len(images)} images): every process must read the same files"
        )
    layout: Layout = request["layout"]
    rows = shard_rows(layout.rows, request["batch_size"], session.world_size, session.rank)
    extract_rows(
        model,
        images,
        folder,
        layout,
        rows,
        request["batch_size"],
        request["workers"],
        session.device(request["device"]),
        False,
        "",
    )
