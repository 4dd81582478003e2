"""Training data: (view1, view2, label) batches whose randomness is a function of (seed, epoch).

Lightning does not restore the global random state when it resumes a run, so nothing here draws
from it. The sampler shuffles with a generator seeded by (seed, epoch) and hands each index to the
dataset together with its epoch; the dataset seeds torch, numpy and ``random`` from
(seed, epoch, index) around each sample's augmentation and restores them afterwards. Hence a run
resumed at an epoch boundary sees exactly the batches of an uninterrupted one, whatever the number
of data-loading workers.

The sampler also shards the data over DDP processes itself (so Lightning's own distributed
sampler is switched off): process ``r`` of ``w`` takes every ``w``-th index of the epoch's
permutation.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from semprobe.data import LabeledImages
from semprobe.errors import SemprobeError


def derive_seed(*key: int) -> int:
    """A 32-bit seed that is a pure function of the integers ``key``."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch (CPU), numpy and ``random`` for the block, then restore their states."""
    # The legacy numpy global state is what lightly's blur and solarisation draw from.
    torch_state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()  # noqa: NPY002
    python_state = random.getstate()
    torch.random.default_generator.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    random.seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(torch_state)
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)``: a (seed, epoch)-seeded permutation, sharded over processes.

    Parameters
    ----------
    num_items:
        Dataset length.
    seed:
        Run seed.
    rank, world_size:
        This process and the number of processes; each gets ``num_items // world_size`` items.
    """

    def __init__(self, num_items: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.num_items = num_items
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items // self.world_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch  # read when iteration starts, after Lightning's set_epoch
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        order = torch.randperm(self.num_items, generator=generator)
        order = order[: len(self) * self.world_size][self.rank :: self.world_size]
        for index in order.tolist():
            yield epoch, index


class TwoViewDataset(Dataset):
    """``(epoch, index)`` -> ``(view1, view2, label)`` with (seed, epoch, index)-seeded views."""

    def __init__(
        self, images: LabeledImages, transform: Callable[[Any], list[Any]], seed: int
    ) -> None:
        self.images = images
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, Any, int]:
        epoch, index = key
        image, label = self.images[index]
        with seeded(derive_seed(self.seed, epoch, index)):
            view1, view2 = self.transform(image)
        return view1, view2, label


class PretrainData(LightningDataModule):
    """The training loader of one run (built when Lightning knows the rank and world size).

    Parameters
    ----------
    images:
        Training split, yielding PIL images (no transform).
    transform:
        Two-view transform (see :mod:`semprobe.pretrain.augment`).
    batch_size:
        Per-process batch size; incomplete last batches are dropped.
    workers:
        DataLoader worker processes.
    seed:
        Run seed.
    """

    def __init__(
        self,
        images: LabeledImages,
        transform: Callable[[Any], list[Any]],
        batch_size: int,
        workers: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.dataset = TwoViewDataset(images, transform, seed)
        self.batch_size = batch_size
        self.workers = workers
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        sampler = EpochSampler(len(self.dataset), self.seed, rank, world)
        if len(sampler) < self.batch_size:
            raise SemprobeError(
                f"{len(self.dataset)} training images give {len(sampler)} per process, fewer "
                f"than one batch of {self.batch_size}: lower --batch-size"
            )
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.workers,
            drop_last=True,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.workers > 0,
        )
