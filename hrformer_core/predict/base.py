"""What every task's predictor shares: the model on its device, frames in batches, running image ids."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from ..tasks.base import PredictOptions
from .sources import Frame, frame_image_id


class ImagePredictor:
    """Base of the task predictors (see `tasks.base.Predictor`); subclasses implement `__call__`."""

    def __init__(self, model: nn.Module, input_size: tuple[int, int], options: PredictOptions) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.input_size = input_size
        self.batch_size = options.batch_size
        self.notes: list[str] = []
        self._count = 0

    def summary_notes(self) -> list[str]:
        return []

    def next_image_id(self, frame: Frame) -> int:
        """The image id of a numeric (COCO-style) file name, else the running index."""
        self._count += 1
        return frame_image_id(frame, self._count)

    def batches(self, frames: Iterable[Frame]) -> Iterator[list[Frame]]:
        batch: list[Frame] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def forward(self, x: torch.Tensor) -> Any:
        """The model on one batch, without autograd (scoped here: the caller's grad mode is left alone)."""
        with torch.inference_mode():
            return self.model(x.to(self.device))
