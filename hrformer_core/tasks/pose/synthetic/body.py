"""The body model's vocabulary: part ids, the parts on which each keypoint shows, a figure and its look.

A `Figure` is a list of drawing primitives ("ops") in depth order plus its 17 COCO keypoints; it is built
in unit height (H = 1, origin at the neck) and moved into an image with `transform`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .primitives import angle_of

# Part ids painted into each figure's label canvas. L/R are the figure's own left/right.
(BG, TORSO, NECK, HEAD, HAIR, EAR_L, EAR_R, EYE, NOSE, MOUTH, COLLAR, BUTTON, BELT, DRESS,
 UPPER_ARM_L, FOREARM_L, HAND_L, UPPER_ARM_R, FOREARM_R, HAND_R,
 THIGH_L, SHIN_L, FOOT_L, THIGH_R, SHIN_R, FOOT_R) = range(26)  # fmt: skip
NUM_PARTS = 26

# Parts on which each keypoint counts as visible (COCO order).
KEYPOINT_PARTS: tuple[frozenset[int], ...] = (
    frozenset({HEAD, NOSE}),
    frozenset({HEAD, EYE}),
    frozenset({HEAD, EYE}),
    frozenset({EAR_L, HEAD, HAIR}),
    frozenset({EAR_R, HEAD, HAIR}),
    frozenset({TORSO, NECK, COLLAR, BUTTON, UPPER_ARM_L}),
    frozenset({TORSO, NECK, COLLAR, BUTTON, UPPER_ARM_R}),
    frozenset({UPPER_ARM_L, FOREARM_L}),
    frozenset({UPPER_ARM_R, FOREARM_R}),
    frozenset({FOREARM_L, HAND_L}),
    frozenset({FOREARM_R, HAND_R}),
    frozenset({TORSO, BELT, DRESS, BUTTON, THIGH_L}),
    frozenset({TORSO, BELT, DRESS, BUTTON, THIGH_R}),
    frozenset({THIGH_L, SHIN_L}),
    frozenset({THIGH_R, SHIN_R}),
    frozenset({SHIN_L, FOOT_L}),
    frozenset({SHIN_R, FOOT_R}),
)
# In a side view the far shoulder and hip hide behind the torso: only their own limb shows them.
FAR_SIDE_PARTS = {5: frozenset({UPPER_ARM_L}), 6: frozenset({UPPER_ARM_R}),
                  11: frozenset({THIGH_L}), 12: frozenset({THIGH_R})}  # fmt: skip


def side_of(keypoint: int) -> str:
    """The figure's side of a COCO keypoint index ('left' for odd indices, 'right' for even ones)."""
    return "left" if keypoint % 2 == 1 else "right"


def other_side(side: str) -> str:
    return "right" if side == "left" else "left"


@dataclass
class Figure:
    """One figure, `height` pixels tall (1 until transformed); `ops` are drawing primitives in depth order."""

    keypoints: np.ndarray  # (17, 2)
    labelled: np.ndarray  # (17,) bool
    far_side: str | None  # 'left' / 'right' in side views
    ops: list[tuple[Any, ...]] = field(default_factory=list)
    height: float = 1.0

    def limb(self, part: int, p0: np.ndarray, p1: np.ndarray, w0: float, w1: float, style: str) -> None:
        """A body segment: tapered (quad + round ends), capsule, or ellipse."""
        if style == "ellipse":
            length = float(np.linalg.norm(p1 - p0))
            axes = (length * 0.5 + 0.35 * max(w0, w1), 0.5 * max(w0, w1))
            self.ops.append(("ellipse", part, (p0 + p1) * 0.5, axes, angle_of(p1 - p0)))
            return
        if style == "capsule":
            w0 = w1 = 0.5 * (w0 + w1)
        d = p1 - p0
        n = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-9)
        quad = np.array([p0 + n * w0 / 2, p1 + n * w1 / 2, p1 - n * w1 / 2, p0 - n * w0 / 2])
        self.ops.append(("poly", part, quad))
        self.ops.append(("circle", part, p0, w0 / 2))
        self.ops.append(("circle", part, p1, w1 / 2))

    def transform(self, scale: float, offset: np.ndarray) -> Figure:
        """The figure scaled by `scale` (a unit figure becomes `scale` pixels tall) and moved by `offset` pixels."""
        ops = []
        for op in self.ops:
            kind, part = op[0], op[1]
            if kind == "poly":
                ops.append((kind, part, op[2] * scale + offset))
            elif kind == "circle":
                ops.append((kind, part, op[2] * scale + offset, op[3] * scale))
            else:  # ellipse or pie: center, axes, angle[, start, end]
                axes = (op[3][0] * scale, op[3][1] * scale)
                ops.append((kind, part, op[2] * scale + offset, axes, *op[4:]))
        return Figure(self.keypoints * scale + offset, self.labelled.copy(), self.far_side, ops, self.height * scale)


@dataclass
class Look:
    """Clothing, drawing styles and proportions of one figure."""

    sleeves: str  # 'long', 'short', 'none'
    legs: str  # 'long', 'shorts', 'dress'
    hair: str  # 'short', 'long', 'bald'
    limb_style: str
    leg_style: str
    belt: bool
    buttons: bool
    collar: str  # 'v', 'round'
    build: float
    thickness: float
    loose: float
