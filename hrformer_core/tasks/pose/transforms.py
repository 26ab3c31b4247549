"""The top-down affine pipeline: person box -> (center, scale) -> one warped, normalised crop.

Units: `center` and `scale` are in image PIXELS (`scale` = width and height of the padded box). The
reference code divides scale by 200; nothing here does. The warp follows the reference non-UDP
`get_affine_transform`: the box center maps to the crop center and the box width to the crop width.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hrformer_core.data.transforms import affine_points, get_affine_matrix, normalize_image
from hrformer_core.errors import UsageError
from hrformer_core.tasks.pose.keypoints import KeypointSet


def box_xywh_to_center_scale(
    box: np.ndarray | list[float], aspect_ratio: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Center (2,) and scale (2,) in pixels of `box` (x, y, w, h) grown to `aspect_ratio` (w / h), x padding."""
    x, y, w, h = (float(v) for v in box)
    center = np.array([x + w * 0.5, y + h * 0.5])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h]) * padding


def half_body_box(
    keypoints: np.ndarray,
    keypoint_set: KeypointSet,
    aspect_ratio: float,
    rng: np.random.Generator,
    upper_prob: float = 0.7,
    padding: float = 1.5,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Center/scale of the upper or lower body's labelled keypoints, or None when too few are labelled."""
    labelled = keypoints[:, 2] > 0
    upper = [i for i in keypoint_set.upper_body_ids if labelled[i]]
    lower = [i for i in keypoint_set.lower_body_ids if labelled[i]]
    use_upper = rng.random() < upper_prob and len(upper) > 2
    chosen = upper if use_upper or len(lower) <= 2 else lower
    if len(chosen) < 2:
        return None
    points = keypoints[chosen, :2]
    center = points.mean(axis=0)
    w, h = points.max(axis=0) - points.min(axis=0)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) * padding


@dataclass
class TopDownAugment:
    """Training augmentation of the reference recipe (defaults = HRFormer / mmpose COCO).

    Scale multiplier: clip(1 + N(0,1) * scale_factor, *scale_range). Rotation, with `rotation_prob`:
    clip(N(0,1) * rotation_factor, -rotation_max, rotation_max) degrees. Center shift, with `shift_prob`:
    U(-1, 1) * shift_factor * scale. Half body, with `half_body_prob` when more than `half_body_min_kpts`
    keypoints are labelled; upper body with `upper_body_prob`.
    """

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_kpts: int = 8
    upper_body_prob: float = 0.7
    half_body_padding: float = 1.5
    scale_factor: float = 0.5
    scale_range: tuple[float, float] = (0.5, 1.5)
    rotation_factor: float = 40.0
    rotation_max: float = 80.0
    rotation_prob: float = 0.6
    shift_prob: float = 0.3
    shift_factor: float = 0.16

    def __post_init__(self) -> None:
        for name in ("flip_prob", "half_body_prob", "upper_body_prob", "rotation_prob", "shift_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"augment.{name}={value} is not a probability; expected a value in [0, 1]")
        for name in ("scale_factor", "rotation_factor", "rotation_max", "shift_factor", "half_body_min_kpts"):
            if getattr(self, name) < 0:
                raise UsageError(f"augment.{name}={getattr(self, name)} must be >= 0")
        lo, hi = self.scale_range
        if not 0 < lo <= 1 <= hi:
            raise UsageError(f"augment.scale_range={list(self.scale_range)}; expected [lo, hi] with 0 < lo <= 1 <= hi")
        if self.half_body_padding <= 0:
            raise UsageError(f"augment.half_body_padding={self.half_body_padding} must be > 0")
        self.scale_range = (float(lo), float(hi))


@dataclass
class TopDownSample:
    """One transformed person: the network input and everything needed to map results back."""

    image: np.ndarray  # float32 (3, H, W), ImageNet-normalised RGB
    keypoints: np.ndarray  # float64 (K, 2) in input pixels
    visible: np.ndarray  # float32 (K,) COCO visibility flag after flipping (0, 1, 2)
    center: np.ndarray  # (2,) pixels, in the (possibly flipped) image frame
    scale: np.ndarray  # (2,) pixels
    rotation: float  # degrees
    flipped: bool


class TopDownTransform:
    """Crop a person with one `cv2.warpAffine` (flip, shift, half body, scale and rotation composed)."""

    def __init__(
        self,
        input_size_hw: tuple[int, int],
        keypoint_set: KeypointSet,
        augment: TopDownAugment | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.input_size_hw = (int(input_size_hw[0]), int(input_size_hw[1]))
        self.keypoint_set = keypoint_set
        self.augment = augment
        self.rng = rng if rng is not None else np.random.default_rng()

    @property
    def aspect_ratio(self) -> float:
        return self.input_size_hw[1] / self.input_size_hw[0]

    def __call__(
        self,
        image: np.ndarray,
        center: np.ndarray,
        scale: np.ndarray,
        keypoints: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> TopDownSample:
        """`image` uint8 RGB (H, W, 3); `keypoints` (K, 3) x, y, visibility in image pixels (or None)."""
        rng = rng if rng is not None else self.rng
        num_kpts = self.keypoint_set.num_keypoints
        kpts = np.zeros((num_kpts, 3)) if keypoints is None else np.array(keypoints, dtype=np.float64)
        center = np.array(center, dtype=np.float64)
        scale = np.array(scale, dtype=np.float64)
        rotation, flipped = 0.0, False
        width = image.shape[1]
        aug = self.augment
        if aug is not None:
            if rng.random() < aug.shift_prob:
                center = center + rng.uniform(-1.0, 1.0, 2) * aug.shift_factor * scale
            if rng.random() < aug.flip_prob:
                flipped = True
                kpts = kpts[self.keypoint_set.flip_index]
                kpts[:, 0] = width - 1 - kpts[:, 0]
                center[0] = width - 1 - center[0]
            if np.count_nonzero(kpts[:, 2] > 0) > aug.half_body_min_kpts and rng.random() < aug.half_body_prob:
                box = half_body_box(
                    kpts, self.keypoint_set, self.aspect_ratio, rng, aug.upper_body_prob, aug.half_body_padding
                )
                if box is not None:
                    center, scale = box
            scale = scale * np.clip(rng.standard_normal() * aug.scale_factor + 1.0, *aug.scale_range)
            if rng.random() < aug.rotation_prob:
                rotation = float(
                    np.clip(rng.standard_normal() * aug.rotation_factor, -aug.rotation_max, aug.rotation_max)
                )
        in_h, in_w = self.input_size_hw
        matrix = get_affine_matrix(center, scale, rotation, (in_w, in_h))
        warp = matrix
        if flipped:
            mirror = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            warp = matrix @ mirror
        crop = cv2.warpAffine(image, warp, (in_w, in_h), flags=cv2.INTER_LINEAR)
        return TopDownSample(
            image=normalize_image(crop),
            keypoints=affine_points(kpts[:, :2], matrix),
            visible=kpts[:, 2].astype(np.float32),
            center=center,
            scale=scale,
            rotation=rotation,
            flipped=flipped,
        )
