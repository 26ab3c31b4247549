"""Classification on user images: the ImageNet test transform (resize to size / 0.875, centre crop)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ...data.transforms import normalize_image
from ...errors import UsageError
from ...models import ModelConfig
from ...predict.base import ImagePredictor
from ...predict.sources import Frame
from ..base import PredictOptions
from .draw import draw_topk
from .folder import RecordedClasses, parse_class_names

CROP_RATIO = 0.875  # resize to size / 0.875, centre-crop `size` (the Swin/ImageNet test transform)


@dataclass
class ClsResult:
    """One image's best labels: (class id, name, probability), best first."""

    frame: Frame
    image_id: int
    topk: list[tuple[int, str, float]]

    def to_dict(self) -> dict[str, Any]:
        record = self.frame.record(self.image_id)
        record["topk"] = [{"class_id": c, "label": n, "score": round(p, 6)} for c, n, p in self.topk]
        return record

    def records(self) -> list[dict[str, Any]]:
        return [self.to_dict()]

    def annotate(self) -> np.ndarray:
        return draw_topk(self.frame.image, [(name, p) for _, name, p in self.topk])

    def label_maps(self) -> dict[str, np.ndarray]:
        return {}

    def counts(self) -> dict[str, int]:
        return {}

    def describe(self) -> str:
        return ", ".join(f"{name} {p:.2f}" for _, name, p in self.topk)


def read_class_names(path: str | Path) -> list[str]:
    """`--class-names`: one name per line, or `<wnid> <name>` lines (formats: `folder.py`'s docstring)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--class-names {path}: no such file; expected one class name per line")
    return parse_class_names(path)


class ClsPredictor(ImagePredictor):
    """Top-k labels, named by `--class-names`, else by the classes the weights record, else by index."""

    def __init__(
        self,
        model: nn.Module,
        config: ModelConfig,
        input_size: tuple[int, int],
        options: PredictOptions,
        recorded: RecordedClasses | None = None,
    ) -> None:
        super().__init__(model, input_size, options)
        self.topk = int(options.task_options.get("topk", 5))
        if self.topk < 1:
            raise UsageError(f"--topk {self.topk}: expected at least 1")
        names_file = options.task_options.get("class_names")
        if names_file is not None:
            names = read_class_names(names_file)
            if len(names) != config.num_classes:
                raise UsageError(
                    f"--class-names {names_file}: {len(names)} class names, but the model has {config.num_classes} "
                    "classes"
                )
            self.class_names = names
        elif recorded is not None:
            self.class_names = list(recorded.names)
        else:
            self.class_names = [str(i) for i in range(config.num_classes)]

    def __call__(self, frames: Iterable[Frame]) -> Iterator[ClsResult]:
        for batch in self.batches(frames):
            yield from self._classify(batch)

    def _classify(self, frames: list[Frame]) -> Iterator[ClsResult]:
        x = torch.from_numpy(np.stack([normalize_image(center_crop(f.image, self.input_size)) for f in frames]))
        probabilities = torch.softmax(self.forward(x).float(), 1).cpu()
        values, indices = probabilities.topk(min(self.topk, probabilities.shape[1]), dim=1)
        for frame, vals, ids in zip(frames, values.tolist(), indices.tolist(), strict=True):
            topk = [(i, self.class_names[i], p) for i, p in zip(ids, vals, strict=True)]
            yield ClsResult(frame, self.next_image_id(frame), topk)


def center_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize the shorter side to size / 0.875 (bicubic) and cut the centre `size` (H, W)."""
    out_h, out_w = size
    height, width = image.shape[:2]
    factor = max(out_h, out_w) / CROP_RATIO / min(height, width)
    new_w, new_h = max(out_w, round(width * factor)), max(out_h, round(height * factor))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    return resized[top : top + out_h, left : left + out_w]
