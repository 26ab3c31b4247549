"""The built-in procedural classification set: shapes and their layout, on clutter, under occlusion.

A class is a shape (8 kinds: disc, ring, square, triangle, star, cross, crescent, arrow) in a layout (3:
one large, a pair side by side, a column of three), 24 classes. Every colour (objects, textured background,
clutter strokes, an occluding patch) is drawn from the same distribution for every class, each object is
rotated, scaled and placed at random, and the objects of a layout share the area of the single one, so
neither the colours nor the amount of foreground tell the class: it takes the outline and the arrangement.
Version 2 keeps the objects the strongest edges of the image (background texture of lower contrast, objects
at least 100 grey levels from it, thinner clutter, smaller occluders): version 1's stripes and checks out-
contrasted the shapes, and HRFormer-T stayed at chance for 550 steps of batch 64 (HRNet-T for 300 of 16).
Written in the ImageNet folder layout (`train/<class>/*.png`, `val/...`, `classes.txt`), so it is read by
the same code as ImageNet. Same seed, same pixels.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np

from ...errors import DataError
from ...utils.io import write_json, write_text
from ..base import cache_dir

SHAPES = ("disc", "ring", "square", "triangle", "star", "cross", "crescent", "arrow")
LAYOUTS = ("one", "pair", "column")
CLASSES = tuple(f"{shape} {layout}" for layout in LAYOUTS for shape in SHAPES)
GENERATOR_VERSION = 2
MARKER = "synth-cls.json"


def _polygon(shape: str) -> list[np.ndarray]:
    """The shape's outline(s) in a unit frame (radius about 1, centred); rings and crescents are drawn apart."""
    if shape == "square":
        return [np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * 0.8]
    if shape == "triangle":
        angles = np.deg2rad([-90, 30, 150])
        return [np.stack([np.cos(angles), np.sin(angles)], 1)]
    if shape == "star":
        angles = np.deg2rad(np.arange(10) * 36 - 90)
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return [np.stack([np.cos(angles) * radius, np.sin(angles) * radius], 1)]
    if shape == "cross":
        a, b = 0.3, 1.0
        return [np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b], [-a, a],
                          [-b, a], [-b, -a], [-a, -a]], np.float64)]  # fmt: skip
    if shape == "arrow":
        return [np.array([[-1, -0.25], [0.2, -0.25], [0.2, -0.65], [1, 0], [0.2, 0.65], [0.2, 0.25], [-1, 0.25]])]
    raise ValueError(shape)


def _draw_shape(canvas: np.ndarray, shape: str, center: np.ndarray, radius: float, angle: float, colour: tuple) -> None:
    if shape == "disc":
        cv2.circle(canvas, _pt(center), max(1, round(radius * 0.9)), colour, -1, cv2.LINE_AA)
        return
    if shape == "ring":
        thickness = max(2, round(radius * 0.35))
        cv2.circle(canvas, _pt(center), max(1, round(radius * 0.9 - thickness / 2)), colour, thickness, cv2.LINE_AA)
        return
    if shape == "crescent":
        mask = np.zeros(canvas.shape[:2], np.uint8)
        cv2.circle(mask, _pt(center), max(1, round(radius * 0.95)), 255, -1, cv2.LINE_AA)
        offset = np.array([math.cos(angle), math.sin(angle)]) * radius * 0.55
        cv2.circle(mask, _pt(center + offset), max(1, round(radius * 0.8)), 0, -1, cv2.LINE_AA)
        alpha = mask[..., None].astype(np.float32) / 255.0
        canvas[:] = (canvas * (1 - alpha) + np.array(colour, np.float32) * alpha).astype(np.uint8)
        return
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    for outline in _polygon(shape):
        points = outline @ rotation.T * radius + center
        cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], colour, cv2.LINE_AA, shift=4)


def _pt(point: np.ndarray) -> tuple[int, int]:
    return round(float(point[0])), round(float(point[1]))


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _object_colour(background: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    """A random colour at least 100 grey levels (summed over RGB: 300) from the background's mean colour."""
    mean = background.reshape(-1, 3).mean(0)
    for _ in range(100):
        colour = np.array(_colour(rng), np.float32)
        if float(np.abs(colour - mean).sum()) >= 300:
            break
    return tuple(int(v) for v in colour)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured background of two close random colours: stripes, checks, blobs or a gradient."""
    a = np.array(_colour(rng), np.float32)
    b = np.clip(a + rng.uniform(-60, 60, 3), 0, 255).astype(np.float32)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = int(rng.integers(0, 4))
    if kind == 0:
        theta, period = rng.uniform(0, math.pi), rng.uniform(0.08, 0.3)
        t = (np.sin((x * math.cos(theta) + y * math.sin(theta)) * 2 * math.pi / period) > 0).astype(np.float32)
    elif kind == 1:
        cells = int(rng.integers(3, 9))
        t = ((np.floor(x * cells) + np.floor(y * cells)) % 2).astype(np.float32)
    elif kind == 2:
        t = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), size / 16)
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    else:
        theta = rng.uniform(0, 2 * math.pi)
        t = np.clip(x * math.cos(theta) + y * math.sin(theta) + 0.5, 0, 1)
    image = a * (1 - t[..., None]) + b * t[..., None]
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def render(label: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One RGB image of class `label` (an index of CLASSES)."""
    shape, layout = SHAPES[label % len(SHAPES)], LAYOUTS[label // len(SHAPES)]
    image = _background(rng, size)
    background = image.copy()
    for _ in range(int(rng.integers(1, 4))):  # clutter strokes behind the objects
        p, q = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        cv2.line(image, _pt(p), _pt(q), _colour(rng), 1, cv2.LINE_AA)
    count = LAYOUTS.index(layout) + 1
    radius = size * rng.uniform(0.26, 0.34) / math.sqrt(count)  # the same total area for every layout
    axis_angle = rng.uniform(-0.5, 0.5) + (math.pi / 2 if layout == "column" else 0.0)
    axis = np.array([math.cos(axis_angle), math.sin(axis_angle)])
    spacing = radius * rng.uniform(2.1, 2.5)
    extent = spacing * (count - 1) / 2 + radius
    center = rng.uniform(extent, size - extent, 2) if size - extent > extent else np.full(2, size / 2)
    same_colour = rng.random() < 0.5
    colour = _object_colour(background, rng)
    for k in range(count):
        position = center + axis * spacing * (k - (count - 1) / 2) + rng.normal(0, radius * 0.08, 2)
        scale = radius * rng.uniform(0.9, 1.1)
        shade = colour if same_colour else _object_colour(background, rng)
        _draw_shape(image, shape, position, scale, rng.uniform(0, 2 * math.pi), shade)
    if rng.random() < 0.4:  # an occluding patch over part of the scene
        w, h = rng.uniform(0.08, 0.2, 2) * size
        x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        cv2.rectangle(image, _pt((x0, y0)), _pt((x0 + w, y0 + h)), _colour(rng), -1)
    for _ in range(int(rng.integers(0, 4))):  # small distractor dots in front
        cv2.circle(image, _pt(rng.uniform(0, size, 2)), int(rng.integers(1, 3)), _colour(rng), -1)
    return image


def _folder(label: int) -> str:
    return f"{label:02d}-{CLASSES[label].replace(' ', '-')}"


def generate_synthetic_cls(out_dir: str | Path, per_class_train: int, per_class_val: int, seed: int = 0,
                           size: int = 64) -> Path:  # fmt: skip
    """Write the set in the ImageNet folder layout under `out_dir` (train/, val/, classes.txt)."""
    if per_class_train < 1 or per_class_val < 1:
        raise DataError(f"synthetic set sizes must be >= 1 per class, got {per_class_train} train, {per_class_val} val")
    root = Path(out_dir)
    for split, count, stream in (("train", per_class_train, 1), ("val", per_class_val, 2)):
        for label in range(len(CLASSES)):
            folder = root / split / _folder(label)
            folder.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng([seed, stream, label])
            for i in range(count):
                image = render(label, rng, size)
                ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                assert ok
                (folder / f"{i:05d}.png").write_bytes(data.tobytes())
    write_text(root / "classes.txt", "".join(f"{_folder(i)} {name}\n" for i, name in enumerate(CLASSES)))
    return root


def ensure_synthetic_cls(per_class_train: int, per_class_val: int, seed: int = 0, size: int = 64) -> Path:
    """The set in the cache (generated on first use); a marker written last makes an interrupted run redo it."""
    root = cache_dir() / f"synth-cls-v{GENERATOR_VERSION}-{per_class_train}-{per_class_val}-s{seed}-{size}"
    params = {"version": GENERATOR_VERSION, "train": per_class_train, "val": per_class_val, "seed": seed, "size": size}
    marker = root / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == params:
                return root
        except (OSError, json.JSONDecodeError):
            pass
    if root.exists():
        shutil.rmtree(root)
    generate_synthetic_cls(root, per_class_train, per_class_val, seed, size)
    write_json(marker, params)
    return root
