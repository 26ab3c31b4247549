"""Classification overlays: the top-k labels with their probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...predict.drawing import BOX_COLOR, put_label


def draw_topk(image_rgb: np.ndarray, labels: Sequence[tuple[str, float]]) -> np.ndarray:
    """A copy of the image with one line per (label, probability), best first, top left."""
    canvas = np.ascontiguousarray(image_rgb.copy())
    line_height = max(14, round(max(canvas.shape[:2]) / 1600 * 40))
    for row, (name, probability) in enumerate(labels):
        put_label(canvas, f"{name} {probability:.2f}", (0, (row + 1) * line_height), BOX_COLOR)
    return canvas
