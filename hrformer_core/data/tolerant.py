"""What every task's dataset shares about unreadable items and DataLoader workers."""

from __future__ import annotations

from pathlib import Path

import cv2
import torch
from torch.utils.data import Dataset

from ..errors import DataError


class TolerantDataset(Dataset):
    """A map-style dataset that skips unreadable items, up to `max_bad_fraction` of them, naming each.

    Subclasses set `bad_images = {}`, `max_bad_fraction` and `epoch` in their constructor and describe their
    items with `item_count()` and `item_description()` (e.g. "images under /data/coco/val2017").
    """

    bad_images: dict[str, str]
    max_bad_fraction: float
    epoch: int
    unusable = "cannot be read"

    def item_count(self) -> int:
        raise NotImplementedError

    def item_description(self) -> str:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations: per-sample randomness is seeded from the epoch."""
        self.epoch = int(epoch)

    @staticmethod
    def worker_init_fn(worker_id: int) -> None:
        """Single-threaded workers: the cores are shared between the workers and the training step.

        OpenCV is left alone when it already runs without a pool (`make_fork_safe` in the parent): resizing the
        pool in a forked worker destroys the parent's pool state, and that waits forever for the parent's pool
        threads (seen after the parent had used OpenCV's pool before `make_fork_safe`).
        """
        if cv2.getNumThreads() > 1:
            cv2.setNumThreads(1)
        torch.set_num_threads(1)

    def _mark_bad(self, path: Path, reason: str) -> None:
        """Note an unusable item; past the tolerated fraction, stop with one line naming the key that allows more."""
        self.bad_images[str(path)] = reason
        total = self.item_count()
        allowed = max(1, int(self.max_bad_fraction * total))
        if len(self.bad_images) > allowed:
            first = min(self.bad_images)
            raise DataError(
                f"{len(self.bad_images)} of {total} {self.item_description()} {self.unusable} "
                f"(e.g. {first}: {self.bad_images[first]}); at most {allowed} ({self.max_bad_fraction:.1%}) are "
                "tolerated: fix or remove them, or raise data.max_bad_fraction to skip more"
            )
