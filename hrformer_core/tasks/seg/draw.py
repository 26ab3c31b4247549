"""Segmentation overlays: class maps in a stable palette blended over the image."""

from __future__ import annotations

import cv2
import numpy as np


def palette(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 colours, distinct and stable: the PASCAL VOC bit-interleaving scheme."""
    colors = np.zeros((num_classes, 3), dtype=np.uint8)
    for index in range(num_classes):
        value, bit = index, 7
        while value and bit >= 0:
            for channel in range(3):
                colors[index, channel] |= ((value >> channel) & 1) << bit
            value >>= 3
            bit -= 1
    return colors


def overlay_mask(image_rgb: np.ndarray, labels: np.ndarray, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """The image blended with its class map coloured by `palette`."""
    colored = palette(num_classes)[labels]
    return cv2.addWeighted(image_rgb, 1.0 - alpha, colored, alpha, 0.0)
