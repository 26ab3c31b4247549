"""Scenes: a cluttered background, 1-3 painted people placed with limited overlap, occluders, sensor grain.

`Scene` keeps, per pixel, which figure and which of its parts is on top, from which COCO visibility follows:
2 visible, 1 labelled but hidden (by another figure, an occluder or the figure itself), 0 unlabelled or
outside the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .body import FAR_SIDE_PARTS, KEYPOINT_PARTS, Figure, Look, side_of
from .figure import sample_figure
from .paint import PaintedFigure, paint_figure
from .primitives import ONE, SHIFT, SKIN_TONES, random_color, rotate


@dataclass
class Scene:
    """An image being composed and, per pixel, the figure and part on top."""

    image: np.ndarray  # uint8 (H, W, 3) RGB
    owner: np.ndarray  # int16 (H, W): figure index, -1 background, -2 foreground occluder
    part: np.ndarray  # uint8 (H, W)

    @classmethod
    def over(cls, image: np.ndarray) -> Scene:
        """An empty scene over a background image (which it paints on)."""
        h, w = image.shape[:2]
        return cls(image, np.full((h, w), -1, np.int16), np.zeros((h, w), np.uint8))

    def add_figure(self, fig: Figure, look: Look, rng: np.random.Generator, index: int) -> PaintedFigure | None:
        """Paint figure number `index` over everything so far; None when it lies outside the image."""
        painted = paint_figure(self.image, fig, look, rng)
        if painted is not None:
            mask = painted.mask
            np.copyto(self.owner, np.int16(index), where=mask)
            np.copyto(self.part, painted.parts, where=mask)
        return painted

    def visibility(self, fig: Figure, index: int) -> np.ndarray:
        """COCO flags: 0 unlabelled or outside the image, 1 hidden, 2 visible on the figure's own part."""
        h, w = self.owner.shape
        flags = np.zeros(17, dtype=np.int64)
        for k, (x, y) in enumerate(fig.keypoints):
            if not fig.labelled[k] or not (0 <= x <= w - 1 and 0 <= y <= h - 1):
                continue
            allowed = KEYPOINT_PARTS[k]
            if fig.far_side is not None and k in FAR_SIDE_PARTS and side_of(k) == fig.far_side:
                allowed = FAR_SIDE_PARTS[k]
            px, py = int(round(x)), int(round(y))
            visible = self.owner[py, px] == index and int(self.part[py, px]) in allowed
            flags[k] = 2 if visible else 1
        return flags


def render_image(
    rng: np.random.Generator, size_hw: tuple[int, int] = (256, 256)
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One synthetic RGB uint8 image and its people: dicts with `keypoints` (17, 3), `bbox`, `area`."""
    h, w = size_hw
    scene = Scene.over(background(rng, h, w))
    count = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    heights = np.sort(rng.uniform(0.35, 0.95 if count == 1 else 0.8, count) * h)
    placed: list[tuple[Figure, PaintedFigure | None]] = []
    boxes: list[np.ndarray] = []
    for index, height in enumerate(heights):
        fig, look = sample_figure(rng)
        lo, hi = fig.keypoints.min(axis=0) * height, fig.keypoints.max(axis=0) * height
        lo, hi = lo - 0.08 * height, hi + 0.08 * height  # head top, hands and feet beyond the keypoints
        extent = hi - lo
        truncate = rng.random() < 0.2
        for _ in range(12):
            slack = extent * (0.4 if truncate else 0.0)
            span = np.array([w, h]) - extent + 2 * slack
            corner = rng.uniform(0, 1, 2) * np.maximum(span, 0) - slack + np.minimum(span, 0) * 0.5
            box = np.concatenate([corner, corner + extent])
            if all(_iou(box, other) < 0.45 for other in boxes):
                break
        boxes.append(box)
        moved = fig.transform(float(height), corner - lo)
        placed.append((moved, scene.add_figure(moved, look, rng, index)))
    if rng.random() < 0.15:
        _occluder(scene, rng)
    people = []
    for index, (fig, painted) in enumerate(placed):
        if painted is None:
            continue
        flags = scene.visibility(fig, index)
        keypoints = np.concatenate([fig.keypoints, flags[:, None]], axis=1)
        keypoints[flags == 0, :2] = 0.0
        people.append({"keypoints": keypoints, "bbox": painted.box, "area": float(painted.area)})
    grain = np.frombuffer(rng.bytes(h * w), np.uint8).reshape(h, w)
    amount = rng.uniform(0.03, 0.08)
    image = cv2.addWeighted(scene.image, 1.0, cv2.merge([grain, grain, grain]), amount, -127.5 * amount)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.4, 0.8))
    return image, people


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Gradient + low-frequency noise + random shapes + limb-like distractor strokes (uint8 RGB)."""
    gh, gw = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    a = rng.uniform(0, 2 * math.pi)
    t = np.arange(gw)[None, :] / (gw - 1) * math.cos(a) + np.arange(gh)[:, None] / (gh - 1) * math.sin(a)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    c1, c2 = random_color(rng, (0.0, 0.7)), random_color(rng, (0.0, 0.7))
    grid = c1 + (c2 - c1) * t[..., None] + rng.normal(0, rng.uniform(10, 40), (gh, gw, 3))
    image = cv2.resize(np.clip(grid, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    size = max(h, w)
    for _ in range(int(rng.integers(3, 11))):
        color = tuple(float(v) for v in random_color(rng))
        thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 4))
        kind = rng.integers(4)
        p = rng.uniform(-0.1, 1.1, 2) * (w, h)
        r = rng.uniform(0.03, 0.25) * size
        if kind == 0:
            q = p + rng.uniform(-1, 1, 2) * r * 2
            cv2.rectangle(image, tuple(int(v) for v in p), tuple(int(v) for v in q), color, thick)
        elif kind == 1:
            cv2.circle(image, tuple(int(v) for v in p), int(r), color, thick)
        elif kind == 2:
            axes = (int(r), int(r * rng.uniform(0.2, 1.0)))
            cv2.ellipse(image, tuple(int(v) for v in p), axes, rng.uniform(0, 180), 0, 360, color, thick)
        else:
            pts = (p + rng.uniform(-1, 1, (int(rng.integers(3, 7)), 2)) * r).astype(np.int32)
            cv2.fillPoly(image, [pts], color)
    for _ in range(int(rng.integers(2, 7))):
        _distractor(image, rng, size)
    return image


def _distractor(image: np.ndarray, rng: np.random.Generator, size: int) -> None:
    """A limb-like chain of 2-3 tapered segments in skin or cloth colours."""
    h, w = image.shape[:2]
    color = SKIN_TONES[rng.integers(len(SKIN_TONES))] if rng.random() < 0.4 else random_color(rng)
    p = rng.uniform(0, 1, 2) * (w, h)
    width = rng.uniform(0.015, 0.05) * size
    direction = rng.uniform(0, 360)
    for _ in range(int(rng.integers(2, 4))):
        q = p + rotate(np.array([1.0, 0.0]), direction) * rng.uniform(0.06, 0.2) * size
        end_width = width * rng.uniform(0.7, 1.0)
        d = q - p
        n = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-9)
        quad = np.array([p + n * width / 2, q + n * end_width / 2, q - n * end_width / 2, p - n * width / 2])
        shade = tuple(float(v) for v in np.clip(color * rng.uniform(0.85, 1.1), 0, 255))
        cv2.fillPoly(image, [np.round(quad * ONE).astype(np.int32)], shade, cv2.LINE_8, SHIFT)
        cv2.circle(image, tuple(int(v) for v in np.round(q * ONE)), max(1, int(end_width / 2 * ONE)), shade, -1,
                   cv2.LINE_8, SHIFT)  # fmt: skip
        p, width = q, end_width
        direction += rng.uniform(-70, 70)


def _occluder(scene: Scene, rng: np.random.Generator) -> None:
    """A foreground object (post, box or blob) in front of the people."""
    h, w = scene.owner.shape
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        x = rng.uniform(0, w)
        half = rng.uniform(0.02, 0.07) * w
        cv2.rectangle(mask, (int(x - half), -1), (int(x + half), h), 1, -1)
    else:
        center = (int(rng.uniform(0, w)), int(rng.uniform(0.3, 1.0) * h))
        axes = (int(rng.uniform(0.06, 0.2) * w), int(rng.uniform(0.05, 0.15) * h))
        cv2.ellipse(mask, center, axes, rng.uniform(0, 180), 0, 360, 1, -1)
    region = mask > 0
    color = random_color(rng, (0.0, 0.6))
    shade = 1.0 + 0.1 * np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    scene.image[region] = np.clip(color * shade.repeat(h, axis=0), 0, 255)[region]
    scene.owner[region] = -2
