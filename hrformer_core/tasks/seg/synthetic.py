"""Procedural street scenes for the offline quick start: classes that colour alone cannot tell apart.

Every class draws its colours from pools that overlap (grey is sky, road, building, vehicle and pole; blue is
sky, glass and cars; green is trees, cars and clothes), and each scene gets its own light (tint, brightness,
a gradient and cast shadows), so a per-pixel colour lookup is weak. What separates the classes is texture
and context: the sky is smooth and on top, the road a perspective band at the bottom with lane markings,
buildings are blocks with window grids, vegetation is noisy foliage, vehicles are boxes with windows and
wheels, people are the pose task's articulated figures, and poles are thin vertical lines. Vehicles, people
and poles occlude what is behind them.

Written in the `folder` layout (`{split}/image/*.png`, `{split}/label/*.png` with train ids).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ...utils.io import atomic_write, write_json
from ..pose.synthetic import paint_figure, sample_figure

SYNTH_CLASSES = ("sky", "road", "building", "vegetation", "vehicle", "person", "pole")
SKY, ROAD, BUILDING, VEGETATION, VEHICLE, PERSON, POLE = range(7)
VERSION = 2  # 2: poles at least 2 pixels wide (1-pixel poles are below the head's stride-4 output)

# Colour pools (RGB): every pool is shared by several classes.
GREY = [(128, 128, 128), (170, 170, 175), (90, 90, 95), (200, 200, 200)]
BLUE = [(90, 140, 210), (60, 90, 150), (140, 180, 230)]
WARM = [(200, 120, 70), (170, 80, 60), (220, 170, 110)]
GREEN = [(60, 120, 50), (90, 150, 60), (40, 80, 40)]
DARK = [(40, 40, 45), (60, 50, 45)]
POOLS = {
    SKY: GREY + BLUE + WARM[2:],
    ROAD: GREY + DARK + WARM[2:],
    BUILDING: GREY + WARM + BLUE[1:2],
    VEGETATION: GREEN + WARM[:2] + DARK[1:],
    VEHICLE: GREY + BLUE + WARM + GREEN[:1] + DARK,
    POLE: GREY + DARK + GREEN[2:],
}


def _color(rng: np.random.Generator, cls: int) -> np.ndarray:
    pool = POOLS[cls]
    return np.array(pool[rng.integers(len(pool))], np.float32) * rng.uniform(0.8, 1.2, 3)


def _noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] with features about `cell` pixels wide."""
    small = rng.uniform(-1, 1, (max(2, shape[0] // cell + 2), max(2, shape[1] // cell + 2))).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _fill(
    image: np.ndarray, label: np.ndarray, mask: np.ndarray, color: np.ndarray, shade: np.ndarray, cls: int
) -> None:
    image[mask] = np.clip(color * shade[mask][:, None], 0, 255)
    label[mask] = cls


def render_scene(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One (RGB uint8 image, uint8 label) pair of `size` (H, W)."""
    h, w = size
    image = np.zeros((h, w, 3), np.float32)
    label = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    horizon = int(h * rng.uniform(0.35, 0.6))
    # Sky: a smooth vertical gradient with soft clouds.
    sky = _color(rng, SKY)
    _fill(image, label, yy < horizon, sky, 0.85 + 0.3 * yy / h + 0.08 * _noise(rng, size, 24), SKY)
    # Road: perspective band under the horizon, asphalt grain and lane markings.
    road_mask = yy >= horizon
    _fill(image, label, road_mask, _color(rng, ROAD), 1.0 + 0.12 * _noise(rng, size, 2), ROAD)
    vanish = w * rng.uniform(0.3, 0.7)
    for lane in rng.uniform(-1.5, 1.5, rng.integers(1, 3)):
        t = (yy - horizon) / max(1, h - horizon)
        dash = ((yy // max(2, h // 16)) % 2 == 0) & road_mask
        line = np.abs(xx - (vanish + lane * t * w * 0.5)) < 0.5 + 1.5 * t
        image[line & dash] = (230, 230, 220)
    # Buildings: blocks standing on the horizon, with window grids; vegetation: noisy foliage blobs.
    for _ in range(rng.integers(1, 5)):
        x0 = int(rng.uniform(-0.1, 0.9) * w)
        bw, top = int(rng.uniform(0.15, 0.45) * w), int(horizon - rng.uniform(0.15, 0.5) * h)
        block = (xx >= x0) & (xx < x0 + bw) & (yy >= top) & (yy < horizon + 2)
        _fill(image, label, block, _color(rng, BUILDING), np.ones(size, np.float32), BUILDING)
        step = int(rng.integers(5, 10))
        windows = block & ((xx - x0) % step < step // 2) & ((yy - top) % step < step // 2) & (yy > top + 2)
        image[windows] = _color(rng, SKY) * 0.6 + 40
    for _ in range(rng.integers(0, 4)):
        cx, cy = rng.uniform(0, w), horizon - rng.uniform(-0.05, 0.2) * h
        r = rng.uniform(0.06, 0.18) * min(h, w)
        blob = ((xx - cx) ** 2 + (yy - cy) ** 2) < (r * (1 + 0.35 * _noise(rng, size, 4))) ** 2
        _fill(image, label, blob, _color(rng, VEGETATION), 1.0 + 0.35 * _noise(rng, size, 2), VEGETATION)
    # Objects on the road, far ones first: vehicles, people and thin poles.
    objects = [
        (rng.uniform(horizon + 2, h + 0.1 * h), kind)
        for kind in rng.choice([VEHICLE, PERSON, POLE], rng.integers(2, 7))
    ]
    for base_y, kind in sorted(objects):
        depth = (base_y - horizon) / max(1.0, h - horizon)
        x = rng.uniform(0, w)
        if kind == VEHICLE:
            vw, vh = (0.15 + 0.3 * depth) * w, (0.08 + 0.15 * depth) * h
            body = (np.abs(xx - x) < vw / 2) & (yy > base_y - vh) & (yy < base_y - vh * 0.15)
            cabin = (np.abs(xx - x) < vw / 3) & (yy > base_y - vh * 1.45) & (yy <= base_y - vh)
            color = _color(rng, VEHICLE)
            _fill(image, label, body | cabin, color, np.ones(size, np.float32), VEHICLE)
            image[cabin & (np.abs(xx - x) < vw / 3 - 2) & (yy > base_y - vh * 1.35)] = _color(rng, SKY) * 0.5
            for wx in (x - vw / 3, x + vw / 3):
                wheel = ((xx - wx) ** 2 + (yy - (base_y - vh * 0.15)) ** 2) < (vh * 0.22) ** 2
                _fill(image, label, wheel, np.array(DARK[0], np.float32), np.ones(size, np.float32), VEHICLE)
        elif kind == PERSON:
            fig, look = sample_figure(rng)
            height = (0.15 + 0.5 * depth) * h
            painted = paint_figure(
                image_u8 := np.clip(image, 0, 255).astype(np.uint8),
                fig.transform(height, np.array([x, base_y - 0.8 * height])),
                look,
                rng,
            )
            if painted is not None:
                image = image_u8.astype(np.float32)
                label[painted.mask] = PERSON
        else:
            thick = 1.0 + 2.0 * depth
            top = base_y - (0.3 + 0.5 * depth) * h
            pole = (np.abs(xx - x) < thick) & (yy > top) & (yy < base_y)
            _fill(image, label, pole, _color(rng, POLE), np.ones(size, np.float32), POLE)
    # Lighting: a tint, a brightness gradient and a soft cast shadow over everything.
    tint = rng.uniform(0.75, 1.25, 3) * rng.uniform(0.6, 1.2)
    angle = rng.uniform(0, 2 * np.pi)
    gradient = 1.0 + 0.25 * ((xx / w - 0.5) * np.cos(angle) + (yy / h - 0.5) * np.sin(angle))
    shadow = 1.0 - 0.35 * (_noise(rng, size, max(4, w // 4)) > 0.4)
    image = image * tint * (gradient * shadow)[..., None] + rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label


def generate_synthetic_seg(out: str | Path, num_train: int, num_val: int, seed: int, size: tuple[int, int]) -> Path:
    """Write the scenes to `out` in the folder layout; the same seed gives the same files."""
    root = Path(out)
    for split, count, split_seed in (("train", num_train, seed), ("val", num_val, seed + 1_000_003)):
        for folder in ("image", "label"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, label = render_scene(np.random.default_rng([split_seed, i]), size)
            name = f"{split}_{i:05d}.png"
            atomic_write(
                root / split / "image" / name, lambda p, a=image: _write_png(p, cv2.cvtColor(a, cv2.COLOR_RGB2BGR))
            )
            atomic_write(root / split / "label" / name, lambda p, a=label: _write_png(p, a))
    write_json(root / "classes.json", {"classes": list(SYNTH_CLASSES), "version": VERSION})
    return root


def _write_png(path: Path, array: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    path.write_bytes(data.tobytes())


def ensure_synthetic_seg(root: Path, num_train: int, num_val: int, seed: int, size: tuple[int, int]) -> Path:
    """The cached set at `root`, generated first when it is missing or from another generator version."""
    marker = root / "classes.json"
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("version") == VERSION:
                return root
        except (OSError, ValueError):
            pass
    return generate_synthetic_seg(root, num_train, num_val, seed, size)
