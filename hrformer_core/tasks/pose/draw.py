"""Skeletons in the keypoint set's colours, with each person's box and score."""

from __future__ import annotations

import cv2
import numpy as np

from ...predict.drawing import BOX_COLOR, line_thickness, put_label
from .keypoints import KeypointSet


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
    width = line_thickness(canvas)
    radius = width + 2
    for box, score, person in zip(boxes, box_scores, keypoints, strict=True):
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), BOX_COLOR, width)
        put_label(canvas, f"person {score:.2f}", (x, y), BOX_COLOR)
        visible = person[:, 2] > kpt_threshold
        points = np.round(person[:, :2]).astype(int)
        for (a, b), color in zip(keypoint_set.skeleton, keypoint_set.limb_colors, strict=True):
            if visible[a] and visible[b]:
                cv2.line(canvas, tuple(points[a]), tuple(points[b]), color, width + 1, cv2.LINE_AA)
        for point, color, shown in zip(points, keypoint_set.keypoint_colors, visible, strict=True):
            if shown:
                cv2.circle(canvas, tuple(point), radius, color, cv2.FILLED, cv2.LINE_AA)
    return canvas
