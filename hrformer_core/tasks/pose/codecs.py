"""Gaussian heatmap targets and their decoding (the reference MSRA codec), vectorised with numpy.

Heatmap pixel (i, j) covers input pixels around (j * stride_x, i * stride_y): a keypoint at input
pixel x has heatmap coordinate x / stride_x, and decoding maps back with
`coord * scale / heatmap_size + center - scale / 2` (non-UDP, scale in image pixels).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch


class HeatmapCodec:
    """Encode keypoints as Gaussian heatmaps and decode heatmaps to keypoints.

    `unbiased=False` is the reference target: the peak sits on the integer pixel `int(x / stride + 0.5)`
    and the Gaussian is cut to a (6 sigma + 1) square. `unbiased=True` centres an uncut Gaussian on the
    exact sub-pixel position (the DARK paper's encoding).
    """

    def __init__(
        self,
        input_size_hw: tuple[int, int],
        heatmap_size_hw: tuple[int, int],
        sigma: float = 2.0,
        unbiased: bool = False,
    ) -> None:
        self.input_size_hw = (int(input_size_hw[0]), int(input_size_hw[1]))
        self.heatmap_size_hw = (int(heatmap_size_hw[0]), int(heatmap_size_hw[1]))
        self.sigma = float(sigma)
        self.unbiased = unbiased
        # (x, y) input pixels per heatmap pixel
        self.stride = np.array(
            [self.input_size_hw[1] / self.heatmap_size_hw[1], self.input_size_hw[0] / self.heatmap_size_hw[0]]
        )

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (K, 2) in input pixels and visibility (K,) -> heatmaps (K, h, w), weights (K,)."""
        h, w = self.heatmap_size_hw
        points = np.asarray(keypoints, dtype=np.float64) / self.stride
        mu = points if self.unbiased else np.trunc(points + 0.5)
        radius = 3.0 * self.sigma
        upper_left = np.trunc(mu - radius)
        bottom_right = np.trunc(mu + radius + 1.0)
        outside = (
            (upper_left[:, 0] >= w) | (upper_left[:, 1] >= h) | (bottom_right[:, 0] < 0) | (bottom_right[:, 1] < 0)
        )
        weights = ((np.asarray(visible) > 0) & ~outside).astype(np.float32)
        xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
        gx = np.exp(-((xs[None, :] - mu[:, :1]) ** 2) / (2.0 * self.sigma**2))
        gy = np.exp(-((ys[None, :] - mu[:, 1:]) ** 2) / (2.0 * self.sigma**2))
        if not self.unbiased:
            gx *= (xs[None, :] >= upper_left[:, :1]) & (xs[None, :] < bottom_right[:, :1])
            gy *= (ys[None, :] >= upper_left[:, 1:]) & (ys[None, :] < bottom_right[:, 1:])
        heatmaps = gy[:, :, None] * gx[:, None, :] * weights[:, None, None]
        return heatmaps.astype(np.float32), weights

    def decode(
        self, heatmaps: np.ndarray | torch.Tensor, dark: bool = False, blur_kernel: int = 11
    ) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps (N, K, h, w) -> coordinates (N, K, 2) in heatmap pixels and scores (N, K).

        Default: argmax, then a quarter pixel toward the higher neighbour (the reference decoding); a map
        whose peak is <= 0 gives (-1, -1) and its peak value, as the reference.
        `dark=True`: DARK, i.e. Gaussian-blur modulation then a second-order Taylor step on the log map.
        """
        maps = _to_numpy(heatmaps)
        coords, scores = _argmax(maps)
        refined = _dark_refine(maps, coords, blur_kernel) if dark else _quarter_offset(maps, coords)
        return refined, scores


def _to_numpy(heatmaps: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps.detach().to("cpu", torch.float32).numpy()
    maps = np.asarray(heatmaps, dtype=np.float32)
    if maps.ndim != 4:
        raise ValueError(f"heatmaps must have shape (N, K, h, w), got {maps.shape}")
    return maps


def _argmax(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer peak (N, K, 2) and its value (first maximum in row-major order on ties).

    A map whose peak is not > 0 (or is NaN) decodes to (-1, -1), as the reference `_get_max_preds`; neither
    refinement touches that point (their neighbour tests need px > 1), so it is back-projected as it is: one
    heatmap pixel up and left of the crop's corner.
    """
    n, k, _, w = maps.shape
    flat = maps.reshape(n, k, -1)
    index = flat.argmax(axis=2)
    scores = np.take_along_axis(flat, index[..., None], axis=2)[..., 0]
    coords = np.stack([index % w, index // w], axis=-1).astype(np.float64)
    return np.where((scores > 0)[..., None], coords, -1.0), scores


def _sample(maps: np.ndarray, px: np.ndarray, py: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """maps[n, k, py + dy, px + dx] for every (n, k), with indices clamped to the map."""
    _, _, h, w = maps.shape
    x = np.clip(px + dx, 0, w - 1)
    y = np.clip(py + dy, 0, h - 1)
    flat = maps.reshape(maps.shape[0], maps.shape[1], -1)
    return np.take_along_axis(flat, (y * w + x)[..., None], axis=2)[..., 0].astype(np.float64)


def _quarter_offset(maps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    _, _, h, w = maps.shape
    px, py = coords[..., 0].astype(np.int64), coords[..., 1].astype(np.int64)
    inside = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    diff_x = _sample(maps, px, py, 1, 0) - _sample(maps, px, py, -1, 0)
    diff_y = _sample(maps, px, py, 0, 1) - _sample(maps, px, py, 0, -1)
    shift = np.stack([np.sign(diff_x), np.sign(diff_y)], axis=-1) * 0.25
    return coords + shift * inside[..., None]


def _blur_matrix(size: int, kernel: np.ndarray) -> np.ndarray:
    """Banded (size, size) matrix applying a 1-D kernel with zero padding outside the map."""
    radius = len(kernel) // 2
    offsets = np.arange(size)[None, :] - np.arange(size)[:, None] + radius
    valid = (offsets >= 0) & (offsets < len(kernel))
    return np.where(valid, kernel[np.clip(offsets, 0, len(kernel) - 1)], 0.0)


def modulate_heatmaps(maps: np.ndarray, kernel_size: int = 11) -> np.ndarray:
    """DARK modulation: Gaussian blur (OpenCV's sigma for `kernel_size`, zero border) keeping each max."""
    _, _, h, w = maps.shape
    kernel = cv2.getGaussianKernel(kernel_size, 0).reshape(-1)
    blurred = np.einsum("ij,nkjl,ml->nkim", _blur_matrix(h, kernel), maps.astype(np.float64), _blur_matrix(w, kernel))
    old_max = maps.max(axis=(2, 3), keepdims=True)
    new_max = blurred.max(axis=(2, 3), keepdims=True)
    ratio = np.divide(old_max, new_max, out=np.zeros_like(new_max), where=new_max > 0)
    return blurred * ratio


def _dark_refine(maps: np.ndarray, coords: np.ndarray, kernel_size: int) -> np.ndarray:
    _, _, h, w = maps.shape
    log_maps = np.log(np.maximum(modulate_heatmaps(maps, kernel_size), 1e-10))
    px, py = coords[..., 0].astype(np.int64), coords[..., 1].astype(np.int64)

    def at(dx: int, dy: int) -> np.ndarray:
        return _sample(log_maps, px, py, dx, dy)

    center = at(0, 0)
    dx = 0.5 * (at(1, 0) - at(-1, 0))
    dy = 0.5 * (at(0, 1) - at(0, -1))
    dxx = 0.25 * (at(2, 0) - 2 * center + at(-2, 0))
    dyy = 0.25 * (at(0, 2) - 2 * center + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy**2
    usable = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2) & (det != 0)
    safe_det = np.where(usable, det, 1.0)
    offset_x = -(dyy * dx - dxy * dy) / safe_det
    offset_y = -(-dxy * dx + dxx * dy) / safe_det
    offset = np.stack([offset_x, offset_y], axis=-1) * usable[..., None]
    return coords + offset


def flip_back(
    heatmaps: torch.Tensor | np.ndarray, flip_pairs: Sequence[tuple[int, int]], shift: bool = True
) -> torch.Tensor | np.ndarray:
    """Heatmaps predicted on a mirrored image (N, K, h, w) -> heatmaps of the original image.

    Mirrors the width axis, swaps left/right channels and, with `shift`, moves the map one pixel right
    (column 0 is kept), as the reference flip test does to undo the `W - 1 - x` mirror at heatmap scale.
    """
    num_kpts = heatmaps.shape[1]
    index = np.arange(num_kpts)
    for a, b in flip_pairs:
        index[a], index[b] = b, a
    if isinstance(heatmaps, torch.Tensor):
        out = heatmaps.flip(-1)[:, torch.as_tensor(index, device=heatmaps.device)]
        return torch.cat([out[..., :1], out[..., :-1]], dim=-1) if shift else out
    out = np.asarray(heatmaps)[:, index, :, ::-1]
    return np.concatenate([out[..., :1], out[..., :-1]], axis=-1) if shift else np.ascontiguousarray(out)


def heatmap_to_image_coords(
    coords: np.ndarray, center: np.ndarray, scale: np.ndarray, heatmap_size_hw: tuple[int, int]
) -> np.ndarray:
    """Heatmap coordinates (N, K, 2) -> original image pixels, with center/scale (N, 2) in pixels."""
    size_xy = np.array([heatmap_size_hw[1], heatmap_size_hw[0]], dtype=np.float64)
    center = np.asarray(center, dtype=np.float64)[..., None, :]
    scale = np.asarray(scale, dtype=np.float64)[..., None, :]
    return np.asarray(coords, dtype=np.float64) * scale / size_xy + center - scale * 0.5
