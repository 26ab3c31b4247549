"""Training augmentation as the official segmentation configs (`train_trans` of seg/configs/<dataset>/*.json).

Order and parameters follow openseg's cv2 transforms: an optional resize so the shorter side is
`base_short_side` (PASCAL-Context, COCO-Stuff, ADE20K: 520), a random scale in `scale_range` with an aspect
jitter in `aspect_range`, a random crop of `crop_size` (padded with the ignore label, and black image pixels,
where the image is smaller), a horizontal flip with probability `flip_prob`, and a brightness shift drawn
from [-brightness_shift, brightness_shift] grey levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .layouts import IGNORE


@dataclass
class SegAugment:
    base_short_side: int = field(default=0, metadata={"min": 0})  # 0: keep the stored size
    scale_range: tuple[float, float] = (0.5, 2.0)
    aspect_range: tuple[float, float] = (0.9, 1.1)
    flip_prob: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    brightness_shift: float = field(default=10.0, metadata={"min": 0.0})


def resize_short_side(
    image: np.ndarray, label: np.ndarray | None, short_side: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scale so the shorter side is `short_side` (bilinear image, nearest labels); 0 keeps the size."""
    height, width = image.shape[:2]
    if short_side <= 0 or min(height, width) == short_side:
        return image, label
    factor = short_side / min(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if label is not None:
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    return image, label


def augment(
    image: np.ndarray, label: np.ndarray, options: SegAugment, crop_hw: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One training sample: uint8 RGB (crop_h, crop_w, 3) and its uint8 train-id label of the same size."""
    image, label = resize_short_side(image, label, options.base_short_side)
    scale = rng.uniform(*options.scale_range)
    aspect = rng.uniform(*options.aspect_range)
    height, width = image.shape[:2]
    size = (max(1, round(width * scale * math.sqrt(aspect))), max(1, round(height * scale / math.sqrt(aspect))))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    image, label = random_crop(image, label, crop_hw, rng)
    if rng.random() < options.flip_prob:
        image, label = image[:, ::-1], label[:, ::-1]
    if options.brightness_shift > 0:
        shift = rng.uniform(-options.brightness_shift, options.brightness_shift)
        image = np.clip(image.astype(np.float32) + shift, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def random_crop(
    image: np.ndarray, label: np.ndarray, crop_hw: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A `crop_hw` window at a random place; a smaller image is padded at a random offset (label: ignore)."""
    crop_h, crop_w = crop_hw
    height, width = image.shape[:2]
    pad_h, pad_w = max(crop_h - height, 0), max(crop_w - width, 0)
    if pad_h or pad_w:
        top, left = int(rng.integers(0, pad_h + 1)), int(rng.integers(0, pad_w + 1))
        padding = ((top, pad_h - top), (left, pad_w - left))
        image = np.pad(image, (*padding, (0, 0)))
        label = np.pad(label, padding, constant_values=IGNORE)
        height, width = image.shape[:2]
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return image[top : top + crop_h, left : left + crop_w], label[top : top + crop_h, left : left + crop_w]
