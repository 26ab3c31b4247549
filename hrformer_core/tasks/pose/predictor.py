"""Top-down prediction on user images: person boxes -> crops -> heatmaps -> image keypoints.

Each person box becomes a crop of the model's input aspect (padded x1.25), warped with one
`cv2.warpAffine` and normalised; crops from consecutive images share forward passes, and the decoded
heatmap peaks are mapped back to image pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ...data.transforms import get_affine_matrix, normalize_image
from ...errors import UsageError
from ...evaluation.coco_keypoints import PersonPrediction, rescore, to_coco_results
from ...models import ModelConfig
from ...predict.base import ImagePredictor
from ...predict.sources import Frame
from ..base import PredictOptions
from .detectors import BoxesFile, Detector, build_detector, describe_detector, keep_boxes
from .draw import draw_pose
from .inference import decode_keypoints, predict_heatmaps
from .keypoints import COCO17, KeypointSet, get_keypoint_set
from .transforms import box_xywh_to_center_scale

BOX_PADDING = 1.25


@dataclass
class PoseResult:
    """The people found in one image or video frame."""

    frame: Frame
    image_id: int
    boxes: np.ndarray  # (N, 4) x, y, w, h
    box_scores: np.ndarray  # (N,)
    keypoints: np.ndarray  # (N, K, 3) x, y, score
    scores: np.ndarray  # (N,) box score x mean confident keypoint score
    keypoint_set: KeypointSet
    kpt_threshold: float

    @property
    def num_people(self) -> int:
        return len(self.boxes)

    def _people(self) -> Iterator[tuple[np.ndarray, float, float, np.ndarray]]:
        return zip(self.boxes, self.box_scores, self.scores, self.keypoints, strict=True)

    def to_dict(self) -> dict[str, Any]:
        record = self.frame.record(self.image_id)
        record["people"] = [
            {
                "bbox": [round(float(v), 2) for v in box],
                "box_score": round(float(box_score), 5),
                "score": round(float(score), 5),
                "keypoints": [[round(float(x), 2), round(float(y), 2), round(float(s), 5)] for x, y, s in kpts],
            }
            for box, box_score, score, kpts in self._people()
        ]
        return record

    def records(self) -> list[dict[str, Any]]:
        """The people in the COCO keypoint results format, plus the file name (and frame) they belong to."""
        people = [
            PersonPrediction(self.image_id, kpts, box, float(box_score), float(box[2] * box[3]), score=float(score))
            for box, box_score, score, kpts in self._people()
        ]
        results = to_coco_results(people)
        for result in results:
            result["file_name"] = self.frame.relative.as_posix()
            if self.frame.is_video:
                result["frame"] = self.frame.frame_index
        return results

    def annotate(self) -> np.ndarray:
        return draw_pose(
            self.frame.image, self.boxes, self.box_scores, self.keypoints, self.keypoint_set, self.kpt_threshold
        )

    def label_maps(self) -> dict[str, np.ndarray]:
        return {}

    def counts(self) -> dict[str, int]:
        return {"people": self.num_people}

    def describe(self) -> str:
        best = f", best score {self.scores.max():.2f}" if self.num_people else ""
        return f"{self.num_people} people{best}"


class PosePredictor(ImagePredictor):
    """Finds person boxes (a boxes file, a detector or the whole image) and predicts their keypoints."""

    def __init__(
        self, model: nn.Module, config: ModelConfig, input_size: tuple[int, int], options: PredictOptions
    ) -> None:
        super().__init__(model, input_size, options)
        extra = options.task_options
        self.flip = options.flip
        self.box_threshold = float(extra.get("box_threshold", 0.3))
        self.kpt_threshold = float(extra.get("kpt_threshold", 0.3))
        boxes, detector = extra.get("boxes"), extra.get("detector")
        if boxes is not None and detector is not None:
            raise UsageError("--boxes and --detector both given: choose one source of person boxes")
        if extra.get("boxes_annotations") is not None and boxes is None:
            raise UsageError("--boxes-annotations needs --boxes")
        # The Python API also takes a BoxesFile and any Detector callable; the CLI passes paths and specs.
        if boxes is None or isinstance(boxes, BoxesFile):
            self.boxes = boxes
        else:
            self.boxes = BoxesFile(Path(boxes), extra.get("boxes_annotations"))
        self.detector: Detector = detector if callable(detector) else build_detector(detector)
        self.keypoint_set = self._keypoint_set(extra.get("keypoints"), config.num_keypoints)
        self.unboxed: list[str] = []
        if boxes is None:
            self.notes.append(f"person boxes: {describe_detector(self.detector)}")

    @staticmethod
    def _keypoint_set(name: str | None, count: int) -> KeypointSet:
        chosen = get_keypoint_set(name) if name else COCO17 if count == COCO17.num_keypoints else None
        if chosen is None:  # an unnamed layout: points only, no skeleton, no flip pairs
            names = tuple(f"keypoint_{i}" for i in range(count))
            return KeypointSet(f"{count}-keypoints", names, (), (), np.full(count, 0.05), tuple(range(count)), ())
        if chosen.num_keypoints != count:
            raise UsageError(
                f"keypoint set {chosen.name} has {chosen.num_keypoints} keypoints; the model predicts {count}"
            )
        return chosen

    def summary_notes(self) -> list[str]:
        if not self.unboxed:
            return []
        shown = ", ".join(self.unboxed[:5]) + (", ..." if len(self.unboxed) > 5 else "")
        return [f"the boxes file has no boxes for {len(self.unboxed)} image(s): {shown}"]

    def __call__(self, frames: Iterable[Frame]) -> Iterator[PoseResult]:
        pending: list[tuple[Frame, np.ndarray, np.ndarray]] = []
        crops = 0
        for frame in frames:
            boxes, scores = self._person_boxes(frame)
            pending.append((frame, boxes, scores))
            crops += len(boxes)
            if crops >= self.batch_size or len(pending) >= self.batch_size:
                yield from self._flush(pending)
                pending, crops = [], 0
        yield from self._flush(pending)

    def _image_id(self, frame: Frame) -> int:
        """The boxes file's id for the image, else the usual file-name rule."""
        running = self.next_image_id(frame)
        if self.boxes is None or frame.is_video:
            return running
        found = self.boxes.image_id(frame.name)
        return self._count if found is None else found

    def _person_boxes(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        if self.boxes is not None and not frame.is_video:
            found = self.boxes.boxes_for(frame.name)
            if found is None:
                self.unboxed.append(frame.relative.as_posix())
                return np.zeros((0, 4)), np.zeros(0)
            boxes, scores = found
        else:
            boxes, scores = self.detector(frame.image)
        return keep_boxes(boxes, scores, self.box_threshold)

    def _flush(self, pending: list[tuple[Frame, np.ndarray, np.ndarray]]) -> Iterator[PoseResult]:
        height, width = self.input_size
        inputs, centers, scales = [], [], []
        for frame, boxes, _ in pending:
            for box in boxes:
                center, scale = box_xywh_to_center_scale(box, width / height, BOX_PADDING)
                matrix = get_affine_matrix(center, scale, 0.0, (width, height))
                crop = cv2.warpAffine(frame.image, matrix, (width, height), flags=cv2.INTER_LINEAR)
                inputs.append(normalize_image(crop))
                centers.append(center)
                scales.append(scale)
        keypoints = self._keypoints(np.stack(inputs), np.stack(centers), np.stack(scales)) if inputs else None
        start = 0
        for frame, boxes, box_scores in pending:
            people = keypoints[start : start + len(boxes)] if keypoints is not None else np.zeros((0, 0, 3))
            start += len(boxes)
            image_id = self._image_id(frame)
            height_px, width_px = frame.image.shape[:2]
            people = _clip_to_image(people, width_px, height_px)
            scores = _person_scores(image_id, people, boxes, box_scores)
            yield PoseResult(
                frame, image_id, boxes, box_scores, people, scores, self.keypoint_set, self.kpt_threshold
            )

    def _keypoints(self, crops: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """(M, K, 3) image-pixel keypoints with heatmap-peak scores (clipped to [0, 1]) for M crops."""
        pairs = self.keypoint_set.flip_pairs if self.flip else None
        maps = torch.cat(
            [
                predict_heatmaps(self.forward, torch.from_numpy(crops[i : i + self.batch_size]), pairs).cpu()
                for i in range(0, len(crops), self.batch_size)
            ]
        )
        keypoints = decode_keypoints(maps, self.input_size, centers, scales)
        keypoints[..., 2] = np.clip(keypoints[..., 2], 0.0, 1.0)
        return keypoints


def _clip_to_image(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """Keypoints decoded in the padded part of a crop can fall outside the image: keep them on it."""
    if keypoints.size == 0:
        return keypoints
    clipped = keypoints.copy()
    clipped[..., 0] = np.clip(clipped[..., 0], 0, width - 1)
    clipped[..., 1] = np.clip(clipped[..., 1], 0, height - 1)
    return clipped


def _person_scores(image_id: int, keypoints: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray) -> np.ndarray:
    """The evaluation protocol's person score: box score x mean keypoint score above 0.2."""
    people = [
        PersonPrediction(image_id, kpts, box, float(score), float(box[2] * box[3]))
        for kpts, box, score in zip(keypoints, boxes, box_scores, strict=True)
    ]
    return np.array([p.score for p in rescore(people)], dtype=np.float64)
