"""Drawing helpers every task's annotated images use: line widths and labels that read on any photo."""

from __future__ import annotations

import cv2
import numpy as np

BOX_COLOR = (255, 64, 64)
TEXT_COLOR = (255, 255, 255)


def line_thickness(image: np.ndarray) -> int:
    """Line width that stays visible on large photos and small crops alike."""
    return max(1, round(max(image.shape[:2]) / 320))


def put_label(image: np.ndarray, text: str, origin: tuple[int, int], color: tuple[int, int, int]) -> None:
    """Text on a filled background so it reads on any photo."""
    scale = max(0.35, max(image.shape[:2]) / 1600)
    thickness = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x = int(np.clip(origin[0], 0, max(0, image.shape[1] - w)))
    y = int(np.clip(origin[1], h + base, image.shape[0]))
    cv2.rectangle(image, (x, y - h - base), (x + w, y), color, cv2.FILLED)
    cv2.putText(image, text, (x, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOR, thickness, cv2.LINE_AA)
