"""Top-k classification accuracy accumulated over a dataset and across processes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hrformer_core.errors import DataError, UsageError


class TopKAccuracy:
    """Counts samples whose target is among the k highest logits, for each k in `ks`.

    `counts` is one int64 tensor [hits for each k..., samples] on the device of the last update, so ranks
    combine with `torch.distributed.all_reduce(acc.counts)`, or in-process with `merge`. A k larger than
    the number of classes counts every sample as a hit.
    """

    def __init__(self, ks: Sequence[int] = (1, 5)) -> None:
        if not ks or any(int(k) < 1 for k in ks):
            raise UsageError(f"top-k values must be positive integers, got {list(ks)}")
        self.ks = tuple(int(k) for k in ks)
        self.counts = torch.zeros(len(self.ks) + 1, dtype=torch.int64)

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch of logits (N, C) and integer class targets (N,)."""
        if logits.dim() != 2 or targets.shape != logits.shape[:1]:
            raise UsageError(
                f"expected logits (N, C) and targets (N,), "
                f"got {tuple(logits.shape)} and {tuple(targets.shape)}"
            )
        num_classes = logits.shape[1]
        targets = targets.detach().long()
        invalid = (targets < 0) | (targets >= num_classes)
        if bool(invalid.any()):
            bad = int(targets[invalid][0])
            raise DataError(f"target class {bad} is outside [0, {num_classes}) of the logits")
        top = logits.detach().topk(min(max(self.ks), num_classes), dim=1).indices
        hit = top == targets.unsqueeze(1)
        hits = [hit[:, :k].any(dim=1).sum() for k in self.ks]
        batch = torch.stack([*hits, torch.tensor(logits.shape[0], device=hit.device)])
        self.counts = self.counts.to(hit.device) + batch

    def merge(self, other: TopKAccuracy) -> None:
        """Add another accumulator's counts (same ks)."""
        if other.ks != self.ks:
            raise UsageError(f"cannot merge top-k counts for ks {other.ks} into ks {self.ks}")
        self.counts = self.counts + other.counts.to(self.counts.device)

    def reset(self) -> None:
        self.counts = torch.zeros_like(self.counts)

    def compute(self) -> dict[str, float]:
        """Accuracy in percent per k, e.g. {"top1": 78.6, "top5": 94.2}; 0 before any sample."""
        *hits, total = self.counts.cpu().tolist()
        return {f"top{k}": 100.0 * h / total if total else 0.0 for k, h in zip(self.ks, hits, strict=True)}


def ranked_accuracy(ranked: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy in percent from each sample's classes best first (N, >= max k) and its labels (N,).

    The same counting as `TopKAccuracy`, for predictions kept as class ranks rather than logits.
    """
    ranked, labels = np.asarray(ranked), np.asarray(labels)
    if len(labels) == 0:
        return {f"top{k}": 0.0 for k in ks}
    hit = ranked == labels[:, None]
    return {f"top{k}": 100.0 * float(hit[:, :k].any(axis=1).mean()) for k in ks}


def per_class_accuracy(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 accuracy in percent per class, NaN for a class without samples; samples per class)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels[predicted == labels], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(counts > 0, 100.0 * correct / np.maximum(counts, 1), np.nan)
    return accuracy, counts
