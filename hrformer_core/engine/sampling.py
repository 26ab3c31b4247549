"""The training batches of an epoch, from any batch on, each drawn under its own random seed.

The order of an epoch's samples is DistributedSampler's (a function of the seed and the epoch), and each batch
is fetched with python, numpy and torch seeded from (seed, rank, epoch, batch number). Augmentation therefore
depends on neither the number of DataLoader workers (which `train.workers` and the machine's cores decide)
nor on where a run was resumed: a run resumed after batch k of an epoch skips those k batches and draws the
rest exactly as an uninterrupted run does.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler


def derive_seed(*parts: int) -> int:
    """A 32-bit seed mixed from non-negative integers (seed, rank, epoch, ...): one stream per combination."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices): the model's initial weights and its own random stream."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EpochBatches(Sampler[list[tuple[int, int]]]):
    """A batch sampler over `sampler`'s epoch (full batches only), from batch `skip` on.

    Each batch is a list of `(batch seed, sample index)`; `SeededBatches` reads the seed. Call `start(epoch,
    skip)` before iterating an epoch.
    """

    def __init__(self, sampler: DistributedSampler, batch_size: int, seed: int, rank: int):
        self.sampler, self.batch_size, self.seed, self.rank = sampler, batch_size, seed, rank
        self.epoch, self.skip = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return len(self.sampler) // self.batch_size

    def start(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch - self.skip)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        indices = list(self.sampler)
        for number in range(self.skip, self.steps_per_epoch):
            seed = derive_seed(self.seed, self.rank, self.epoch, number)
            chunk = indices[number * self.batch_size : (number + 1) * self.batch_size]
            yield [(seed, index) for index in chunk]


class SeededBatches(Dataset):
    """`dataset` read a batch at a time under the batch's seed; the caller's random state is left as it was.

    Restoring the state matters with `train.workers=0`, where batches are read in the training process: the
    model's own randomness (dropout, drop path) then follows the same stream as with worker processes.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[Any]:
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        seed = keys[0][0]
        random.seed(seed)
        np.random.seed(seed)
        torch.default_generator.manual_seed(seed)
        try:
            return [self.dataset[index] for _, index in keys]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])
