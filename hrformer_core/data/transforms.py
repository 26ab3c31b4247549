"""Image geometry and normalisation every task uses: affine warps between image and network pixels.

`get_affine_matrix` follows the reference non-UDP `get_affine_transform`: the box center maps to the crop
center and the box width to the crop width; centres and scales are in image pixels (no division by 200).
"""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def get_affine_matrix(
    center: np.ndarray,
    scale: np.ndarray,
    rotation_deg: float,
    output_size_wh: tuple[int, int],
    inverse: bool = False,
) -> np.ndarray:
    """2x3 matrix mapping image pixels to crop pixels (or back with `inverse`).

    A similarity: the crop is `scale[0]` pixels wide around `center`, rotated by `rotation_deg`
    (the reference's sign convention), and `center` lands on (out_w / 2, out_h / 2).
    """
    out_w, out_h = output_size_wh
    if float(scale[0]) == 0.0:  # an empty box: the reference's cv2.getAffineTransform gets one point thrice
        return np.array([[0.0, 0.0, center[0]], [0.0, 0.0, center[1]]]) if inverse else np.zeros((2, 3))
    k = out_w / float(scale[0])
    theta = np.deg2rad(rotation_deg)
    cos, sin = np.cos(theta), np.sin(theta)
    dst_center = np.array([out_w * 0.5, out_h * 0.5])
    src_center = np.asarray(center, dtype=np.float64)
    if inverse:
        linear = np.array([[cos, -sin], [sin, cos]]) / k
        offset = src_center - linear @ dst_center
    else:
        linear = k * np.array([[cos, sin], [-sin, cos]])
        offset = dst_center - linear @ src_center
    return np.concatenate([linear, offset[:, None]], axis=1)


def affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to points of shape (..., 2)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def normalize_image(image_rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W) with the ImageNet mean/std."""
    scaled = (image_rgb.astype(np.float32) - IMAGENET_MEAN * 255.0) * (1.0 / (IMAGENET_STD * 255.0))
    return np.ascontiguousarray(scaled.transpose(2, 0, 1))
