"""Drawing predictions on RGB images: skeletons in the keypoint set's colours, masks, top-k labels."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..data.keypoints import KeypointSet

BOX_COLOR = (255, 64, 64)
TEXT_COLOR = (255, 255, 255)


def _thickness(image: np.ndarray) -> int:
    """Line width that stays visible on large photos and small crops alike."""
    return max(1, round(max(image.shape[:2]) / 320))


def _label(image: np.ndarray, text: str, origin: tuple[int, int], color: tuple[int, int, int]) -> None:
    """Text on a filled background so it reads on any photo."""
    scale = max(0.35, max(image.shape[:2]) / 1600)
    thickness = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x = int(np.clip(origin[0], 0, max(0, image.shape[1] - w)))
    y = int(np.clip(origin[1], h + base, image.shape[0]))
    cv2.rectangle(image, (x, y - h - base), (x + w, y), color, cv2.FILLED)
    cv2.putText(image, text, (x, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOR, thickness, cv2.LINE_AA)


def draw_pose(
    image_rgb: np.ndarray,
    boxes: np.ndarray,
    box_scores: np.ndarray,
    keypoints: np.ndarray,
    keypoint_set: KeypointSet,
    kpt_threshold: float = 0.3,
) -> np.ndarray:
    """A copy of the image with each person's box, box score, limbs and keypoints above `kpt_threshold`."""
    canvas = np.ascontiguousarray(image_rgb.copy())
    width = _thickness(canvas)
    radius = width + 2
    for box, score, person in zip(boxes, box_scores, keypoints, strict=True):
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), BOX_COLOR, width)
        _label(canvas, f"person {score:.2f}", (x, y), BOX_COLOR)
        visible = person[:, 2] > kpt_threshold
        points = np.round(person[:, :2]).astype(int)
        for (a, b), color in zip(keypoint_set.skeleton, keypoint_set.limb_colors, strict=True):
            if visible[a] and visible[b]:
                cv2.line(canvas, tuple(points[a]), tuple(points[b]), color, width + 1, cv2.LINE_AA)
        for point, color, shown in zip(points, keypoint_set.keypoint_colors, visible, strict=True):
            if shown:
                cv2.circle(canvas, tuple(point), radius, color, cv2.FILLED, cv2.LINE_AA)
    return canvas


def palette(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 colours, distinct and stable: the PASCAL VOC bit-interleaving scheme."""
    colors = np.zeros((num_classes, 3), dtype=np.uint8)
    for index in range(num_classes):
        value, bit = index, 7
        while value and bit >= 0:
            for channel in range(3):
                colors[index, channel] |= ((value >> channel) & 1) << bit
            value >>= 3
            bit -= 1
    return colors


def overlay_mask(image_rgb: np.ndarray, labels: np.ndarray, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """The image blended with its class map coloured by `palette`."""
    colored = palette(num_classes)[labels]
    return cv2.addWeighted(image_rgb, 1.0 - alpha, colored, alpha, 0.0)


def draw_topk(image_rgb: np.ndarray, labels: Sequence[tuple[str, float]]) -> np.ndarray:
    """A copy of the image with one line per (label, probability), best first, top left."""
    canvas = np.ascontiguousarray(image_rgb.copy())
    line_height = max(14, round(max(canvas.shape[:2]) / 1600 * 40))
    for row, (name, probability) in enumerate(labels):
        _label(canvas, f"{name} {probability:.2f}", (0, (row + 1) * line_height), BOX_COLOR)
    return canvas
