"""Heatmaps to image keypoints, once for evaluation and prediction: flip test, decoding, back-projection."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .codecs import HeatmapCodec, flip_back, heatmap_to_image_coords


def predict_heatmaps(
    forward: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    flip_pairs: Sequence[tuple[int, int]] | None,
    shift: bool = True,
) -> torch.Tensor:
    """Float heatmaps of `images`; with `flip_pairs`, averaged with the mirrored images' flipped-back maps."""
    heatmaps = forward(images).float()
    if flip_pairs is not None:
        flipped = forward(images.flip(-1)).float()
        heatmaps = (heatmaps + flip_back(flipped, flip_pairs, shift)) * 0.5
    return heatmaps


def decode_keypoints(
    heatmaps: torch.Tensor,
    input_size_hw: tuple[int, int],
    center: np.ndarray,
    scale: np.ndarray,
    dark: bool = False,
) -> np.ndarray:
    """(N, K, 3) keypoints in image pixels with their heatmap-peak scores, for crops at (center, scale)."""
    size_hw = (int(heatmaps.shape[-2]), int(heatmaps.shape[-1]))
    coords, scores = HeatmapCodec(input_size_hw, size_hw).decode(heatmaps.cpu(), dark=dark)
    points = heatmap_to_image_coords(coords, center, scale, size_hw)
    return np.concatenate([points, scores[..., None]], axis=-1).astype(np.float64)
