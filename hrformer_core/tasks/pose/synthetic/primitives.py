"""Helpers shared by the figure and the scene code: 2-D rotation, random colours, skin tones, fixed-point drawing."""

from __future__ import annotations

import math

import cv2
import numpy as np

SHIFT = 4  # sub-pixel bits for OpenCV drawing
ONE = 1 << SHIFT

SKIN_TONES = np.array([[255, 224, 196], [241, 194, 125], [224, 172, 105], [198, 134, 66], [161, 102, 55],
                       [120, 75, 45], [90, 56, 37]], dtype=np.float32)  # fmt: skip


def rotate(v: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate a 2-D vector; positive angles turn +x toward +y (clockwise on screen, as OpenCV)."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return np.array([v[0] * c - v[1] * s, v[0] * s + v[1] * c])


def angle_of(v: np.ndarray) -> float:
    """The direction of `v` in degrees, in OpenCV's convention (as `rotate`)."""
    return math.degrees(math.atan2(v[1], v[0]))


def random_color(rng: np.random.Generator, saturation: tuple[float, float] = (0.2, 0.9)) -> np.ndarray:
    """A random RGB colour (float32) of the given saturation range and a medium-to-bright value."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(40, 240)]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
