"""Segmentation on user images: the whole image resized to the input size, or overlapping windows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.transforms import normalize_image
from ...errors import UsageError
from ...models import ModelConfig
from ...predict.base import ImagePredictor
from ...predict.sources import Frame
from ..base import PredictOptions
from .draw import overlay_mask
from .inference import SEG_MODES, sliding_logits
from .layouts import names_for_classes

DESCRIBED_CLASSES = 3  # the largest classes `describe` names


@dataclass
class SegResult:
    """One image's class map."""

    frame: Frame
    image_id: int
    labels: np.ndarray  # (H, W) class per pixel
    class_names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        record = self.frame.record(self.image_id)
        ids, counts = np.unique(self.labels, return_counts=True)
        record["class_pixels"] = {str(int(i)): int(c) for i, c in zip(ids, counts, strict=True)}
        record["class_names"] = {str(int(i)): self.class_names[int(i)] for i in ids}
        return record

    def records(self) -> list[dict[str, Any]]:
        return [self.to_dict()]

    def annotate(self) -> np.ndarray:
        return overlay_mask(self.frame.image, self.labels, len(self.class_names))

    def label_maps(self) -> dict[str, np.ndarray]:
        return {"labels": self.labels}

    def counts(self) -> dict[str, int]:
        return {}

    def describe(self) -> str:
        ids, counts = np.unique(self.labels, return_counts=True)
        order = np.argsort(-counts, kind="stable")[:DESCRIBED_CLASSES]
        largest = ", ".join(f"{self.class_names[ids[i]]} {100 * counts[i] / self.labels.size:.0f}%" for i in order)
        return f"{len(ids)} classes present ({largest}{', ...' if len(ids) > DESCRIBED_CLASSES else ''})"


class SegPredictor(ImagePredictor):
    def __init__(
        self, model: nn.Module, config: ModelConfig, input_size: tuple[int, int], options: PredictOptions
    ) -> None:
        super().__init__(model, input_size, options)
        self.class_names = names_for_classes(config.num_classes, config.extra.get("class_names"))
        self.mode = options.task_options.get("seg_mode", "whole")
        if self.mode not in SEG_MODES:
            raise UsageError(f"--seg-mode {self.mode!r}: expected one of {', '.join(SEG_MODES)}")

    def __call__(self, frames: Iterable[Frame]) -> Iterator[SegResult]:
        if self.mode == "slide":
            for frame in frames:
                yield self._result(frame, self._segment_sliding(frame.image))
            return
        for batch in self.batches(frames):
            yield from self._segment_whole(batch)

    def _result(self, frame: Frame, labels: np.ndarray) -> SegResult:
        return SegResult(frame, self.next_image_id(frame), labels, self.class_names)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        _, logits = self.forward(x)
        return logits.float().cpu()

    def _segment_whole(self, frames: list[Frame]) -> Iterator[SegResult]:
        height, width = self.input_size
        resized = [cv2.resize(f.image, (width, height), interpolation=cv2.INTER_LINEAR) for f in frames]
        logits = self._logits(torch.from_numpy(np.stack([normalize_image(i) for i in resized])))
        for frame, frame_logits in zip(frames, logits, strict=True):
            full = F.interpolate(frame_logits[None], size=frame.image.shape[:2], mode="bilinear", align_corners=False)
            yield self._result(frame, _to_labels(full[0]))

    def _segment_sliding(self, image: np.ndarray) -> np.ndarray:
        """Average logits of input-size windows (see `inference.sliding_logits`)."""
        x = torch.from_numpy(normalize_image(image))
        return _to_labels(sliding_logits(self._logits, x, self.input_size, self.batch_size))


def _to_labels(logits: torch.Tensor) -> np.ndarray:
    labels = logits.argmax(0).cpu().numpy()
    return labels.astype(np.uint8 if logits.shape[0] <= 256 else np.uint16)
