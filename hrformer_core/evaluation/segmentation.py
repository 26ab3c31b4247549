"""Semantic-segmentation metrics from a dataset-wide confusion matrix (mIoU as openseg's running score)."""

from __future__ import annotations

from typing import Any

import torch

from hrformer_core.errors import DataError, UsageError


class ConfusionMatrix:
    """Counts (ground truth, prediction) pixel pairs over a whole dataset.

    `matrix[t, p]` is an int64 tensor that lives on the device of the last update; ranks combine their
    counts with `torch.distributed.all_reduce(cm.matrix)` before `compute()`. Pixels labelled
    `ignore_index` are skipped.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise UsageError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros((num_classes, num_classes), dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: `pred` is labels shaped like `target`, or logits with classes on dim 1."""
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(dim=1)
        if pred.shape != target.shape:
            raise UsageError(
                f"prediction shape {tuple(pred.shape)} does not match label shape {tuple(target.shape)}"
            )
        pred, target = pred.detach().reshape(-1).long(), target.detach().reshape(-1).long()
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        n = self.num_classes
        out_of_range = (target < 0) | (target >= n) | (pred < 0) | (pred >= n)
        if bool(out_of_range.any()):
            bad = torch.cat([target[(target < 0) | (target >= n)], pred[(pred < 0) | (pred >= n)]])[0]
            raise DataError(
                f"label value {int(bad)} is outside [0, {n}) and is not ignore_index {self.ignore_index}"
            )
        self.matrix = self.matrix.to(target.device)
        self.matrix += torch.bincount(target * n + pred, minlength=n * n).reshape(n, n)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix's counts (e.g. one gathered from another process)."""
        if other.num_classes != self.num_classes:
            raise UsageError(f"cannot merge {other.num_classes}-class counts into {self.num_classes} classes")
        self.matrix = self.matrix + other.matrix.to(self.matrix.device)

    def reset(self) -> None:
        self.matrix = torch.zeros_like(self.matrix)

    def compute(self) -> dict[str, Any]:
        """mIoU, per-class IoU and accuracy (the class's pixels predicted right), pixel and mean accuracy, as
        fractions in [0, 1].

        A class absent from both labels and predictions has IoU None and is left out of the mean
        (nanmean, as the reference), a class absent from the labels has accuracy None; with no pixels counted
        every metric is 0.
        """
        m = self.matrix.detach().to("cpu", torch.float64)
        hits = m.diagonal()
        gt_count, pred_count = m.sum(dim=1), m.sum(dim=0)
        union = gt_count + pred_count - hits
        iou = torch.where(union > 0, hits / union.clamp(min=1), torch.nan)
        accuracy = torch.where(gt_count > 0, hits / gt_count.clamp(min=1), torch.nan)
        total = float(m.sum())
        return {
            "mIoU": _nanmean(iou),
            "IoU": [None if torch.isnan(v) else float(v) for v in iou],
            "pixel_accuracy": float(hits.sum()) / total if total else 0.0,
            "mean_accuracy": _nanmean(accuracy),
            "accuracy": [None if torch.isnan(v) else float(v) for v in accuracy],
        }


def _nanmean(values: torch.Tensor) -> float:
    present = values[~torch.isnan(values)]
    return float(present.mean()) if present.numel() else 0.0
