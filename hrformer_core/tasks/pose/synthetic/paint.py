"""Painting one figure into an image: part colours, cloth and hair textures, outlines.

`paint_figure` is usable on its own (any RGB image, e.g. a segmentation scene): it rasterises the figure's
primitives into a part-id map, colours and shades it, and returns the part map, mask box and area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .body import (
    BELT,
    BG,
    BUTTON,
    COLLAR,
    DRESS,
    EAR_L,
    EAR_R,
    EYE,
    FOOT_L,
    FOOT_R,
    FOREARM_L,
    FOREARM_R,
    HAIR,
    HAND_L,
    HAND_R,
    HEAD,
    MOUTH,
    NECK,
    NOSE,
    NUM_PARTS,
    SHIN_L,
    SHIN_R,
    THIGH_L,
    THIGH_R,
    TORSO,
    UPPER_ARM_L,
    UPPER_ARM_R,
    Figure,
    Look,
)
from .primitives import ONE, SHIFT, SKIN_TONES, random_color

_HAIR_COLORS = np.array([[25, 20, 18], [60, 40, 28], [105, 70, 42], [190, 160, 95], [150, 145, 140],
                         [130, 55, 30], [45, 35, 30]], dtype=np.float32)  # fmt: skip


@dataclass
class PaintedFigure:
    """Where a figure landed in the image: its part ids, and the box and area of its full (amodal) mask."""

    parts: np.ndarray  # uint8 (H, W): the figure's part id per pixel, BG off the figure
    box: list[float]  # x, y, width, height of the mask
    area: int  # mask pixels

    @property
    def mask(self) -> np.ndarray:
        """Pixels the figure covers (bool (H, W)); later figures or occluders may cover them in turn."""
        return self.parts != BG


def paint_figure(image: np.ndarray, fig: Figure, look: Look, rng: np.random.Generator) -> PaintedFigure | None:
    """Paint a figure (already in image pixels, see `Figure.transform`) over an RGB uint8 image, in place.

    Returns None when no pixel of the figure falls inside the image.
    """
    img_h, img_w = image.shape[:2]
    height = fig.height
    low = np.floor(fig.keypoints.min(axis=0) - 0.16 * height).astype(int)
    high = np.ceil(fig.keypoints.max(axis=0) + 0.16 * height).astype(int)
    x0, y0 = max(0, low[0]), max(0, low[1])
    x1, y1 = min(img_w, high[0]), min(img_h, high[1])
    if x1 <= x0 or y1 <= y0:
        return None
    origin = np.array([x0, y0], dtype=np.float64)
    ids = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for op in fig.ops:
        _draw_op(ids, op, origin, int(op[1]))
    mask = ids > 0
    area = int(mask.sum())
    if area == 0:
        return None
    colors, cloth = person_palette(rng, look)
    shade = np.ones(ids.shape, np.float32)
    cloth_ids = cloth[ids]
    for kind in np.unique(cloth_ids[cloth_ids > 0]):
        shade = np.where(cloth_ids == kind, _pattern(rng, int(kind), ids.shape, height), shade)
    step_x = ids[:, 1:] != ids[:, :-1]
    step_y = ids[1:, :] != ids[:-1, :]
    edge = np.zeros_like(mask)
    edge[:, 1:] |= step_x
    edge[:, :-1] |= step_x
    edge[1:, :] |= step_y
    edge[:-1, :] |= step_y
    shade[edge] *= rng.uniform(0.5, 0.85)  # outlines between parts and around the figure
    color = np.clip(colors[ids] * shade[..., None], 0, 255).astype(np.uint8)
    np.copyto(image[y0:y1, x0:x1], color, where=mask[..., None])
    parts = np.zeros((img_h, img_w), np.uint8)
    parts[y0:y1, x0:x1] = ids
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = [float(x0 + cols[0]), float(y0 + rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]
    return PaintedFigure(parts, box, area)


def person_palette(rng: np.random.Generator, look: Look) -> tuple[np.ndarray, np.ndarray]:
    """Colour of every part id (with per-part brightness jitter) and which parts get the cloth texture."""
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.08, 3)
    hair = _HAIR_COLORS[rng.integers(len(_HAIR_COLORS))] * rng.uniform(0.85, 1.15)
    shirt = random_color(rng)
    pants = (
        random_color(rng, (0.1, 0.6))
        if rng.random() < 0.6
        else np.array([55, 75, 120], np.float32) * rng.uniform(0.7, 1.3)
    )
    shoes = random_color(rng, (0.0, 0.5)) * 0.6
    colors = np.zeros((NUM_PARTS, 3), np.float32)
    colors[[HEAD, NECK, EAR_L, EAR_R, HAND_L, HAND_R]] = skin
    colors[HAIR] = hair
    colors[EYE] = (30, 25, 25)
    colors[NOSE] = skin * 0.82
    colors[MOUTH] = np.array([150, 60, 60], np.float32) * rng.uniform(0.7, 1.1)
    colors[[TORSO, DRESS]] = shirt
    colors[COLLAR] = random_color(rng) if rng.random() < 0.5 else shirt * 0.7
    colors[BUTTON] = (240, 240, 230) if shirt.mean() < 128 else (30, 30, 35)
    colors[BELT] = np.array([60, 40, 25], np.float32) * rng.uniform(0.6, 1.4)
    sleeve = {"long": (shirt, shirt), "short": (shirt, skin), "none": (skin, skin)}[look.sleeves]
    colors[[UPPER_ARM_L, UPPER_ARM_R]], colors[[FOREARM_L, FOREARM_R]] = sleeve
    leg = {"long": (pants, pants), "shorts": (pants, skin), "dress": (skin, skin)}[look.legs]
    colors[[THIGH_L, THIGH_R]], colors[[SHIN_L, SHIN_R]] = leg
    colors[[FOOT_L, FOOT_R]] = shoes
    jitter = rng.uniform(0.88, 1.12, NUM_PARTS).astype(np.float32)
    jitter[[EYE, BUTTON]] = 1.0
    colors = np.clip(colors * jitter[:, None], 0, 255)
    cloth = np.zeros(NUM_PARTS, np.uint8)  # 1: shirt texture, 2: pants texture, 3: hair strands
    cloth[[TORSO, DRESS]] = 1
    if look.sleeves != "none":
        cloth[[UPPER_ARM_L, UPPER_ARM_R]] = 1
    if look.sleeves == "long":
        cloth[[FOREARM_L, FOREARM_R]] = 1
    if look.legs != "dress":
        cloth[[THIGH_L, THIGH_R]] = 2
        if look.legs == "long":
            cloth[[SHIN_L, SHIN_R]] = 2
    cloth[HAIR] = 3
    return colors, cloth


def _pattern(rng: np.random.Generator, kind: int, shape: tuple[int, int], pixels_per_unit: float) -> np.ndarray:
    """Multiplicative texture field: stripes, checks, noise or plain (hair: fine strands)."""
    h, w = shape
    ys, xs = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
    if kind == 3:
        a = math.radians(rng.uniform(60, 120))
        period = max(2.0, 0.012 * pixels_per_unit)
        return 1.0 + 0.12 * np.sin((xs * math.cos(a) + ys * math.sin(a)) * (2 * math.pi / period))
    style = rng.choice(
        ["plain", "stripes", "checks", "noise"], p=[0.35, 0.3, 0.15, 0.2] if kind == 1 else [0.6, 0.1, 0.05, 0.25]
    )
    if style == "plain":
        return np.ones((h, w), np.float32)
    if style == "noise":
        return 1.0 + 0.09 * rng.standard_normal((h, w), dtype=np.float32)
    period = max(3.0, rng.uniform(0.02, 0.06) * pixels_per_unit)
    a = math.radians(rng.uniform(0, 180))
    amp = rng.uniform(0.2, 0.5) * (1 if rng.random() < 0.5 else -1)
    stripes = (np.floor((xs * math.cos(a) + ys * math.sin(a)) / period) % 2).astype(np.float32)
    if style == "checks":
        other = np.floor((-xs * math.sin(a) + ys * math.cos(a)) / period) % 2
        stripes = np.abs(stripes - other.astype(np.float32))
    return 1.0 - amp * stripes


def _draw_op(canvas: np.ndarray, op: tuple[Any, ...], origin: np.ndarray, value: Any) -> None:
    """Fill one primitive into `canvas` with sub-pixel precision; `origin` is the canvas's top-left in pixels."""
    kind = op[0]

    def fixed(points: np.ndarray) -> np.ndarray:
        return np.round((np.asarray(points) - origin) * ONE).astype(np.int32)

    if kind == "poly":
        cv2.fillPoly(canvas, [fixed(op[2])], value, cv2.LINE_8, SHIFT)
    elif kind == "circle":
        center = tuple(int(v) for v in fixed(op[2]))
        cv2.circle(canvas, center, max(1, round(op[3] * ONE)), value, -1, cv2.LINE_8, SHIFT)
    else:
        center = tuple(int(v) for v in fixed(op[2]))
        axes = (max(1, round(op[3][0] * ONE)), max(1, round(op[3][1] * ONE)))
        start, end = (op[5], op[6]) if kind == "pie" else (0.0, 360.0)
        cv2.ellipse(canvas, center, axes, op[4], start, end, value, -1, cv2.LINE_8, SHIFT)
