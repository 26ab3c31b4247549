"""The prediction loop: frames in, per-image results out, batched across images.

Pose is top-down: each person box becomes a crop of the model's input aspect (padded x1.25), warped with one
`cv2.warpAffine`, normalised with the ImageNet statistics; crops from consecutive images share forward
passes, and decoded heatmap peaks are mapped back to image pixels. Segmentation runs on the whole image
resized to the input size, or on overlapping input-size windows; classification on the ImageNet-style
centre crop.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..data.codecs import HeatmapCodec, flip_back, heatmap_to_image_coords
from ..data.keypoints import COCO17, KeypointSet
from ..data.transforms import box_xywh_to_center_scale, get_affine_matrix, normalize_image
from ..errors import UsageError
from ..evaluation.coco_keypoints import PersonPrediction, rescore, to_coco_results
from ..models.fuse import optimize_for_inference
from .detectors import BoxesFile, Detector, WholeImage, coco_image_id, keep_boxes
from .sources import Frame, FrameStream
from .weights import LoadedWeights, input_size_of, load_weights, parse_size

BOX_PADDING = 1.25
CLS_CROP_RATIO = 0.875  # resize to size / 0.875, centre-crop `size` (the Swin/ImageNet test transform)
SEG_MODES = ("whole", "slide")


@dataclass
class PredictResult:
    """Everything predicted for one image or video frame."""

    frame: Frame
    image_id: int
    task: str
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # pose: (N, 4) x, y, w, h
    box_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3)))  # (N, K, 3) x, y, score
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # box score x mean confident kpt score
    labels: np.ndarray | None = None  # seg: (H, W) class per pixel
    topk: list[tuple[int, str, float]] = field(default_factory=list)  # cls: (class id, name, probability)

    @property
    def num_people(self) -> int:
        return len(self.boxes)

    def to_dict(self) -> dict[str, Any]:
        """The per-image JSON record."""
        height, width = self.frame.image.shape[:2]
        record: dict[str, Any] = {"file_name": self.frame.relative.as_posix(), "image_id": self.image_id}
        if self.frame.is_video:
            record["frame"] = self.frame.frame_index
        record.update(width=width, height=height)
        if self.task == "pose":
            record["people"] = [
                {
                    "bbox": [round(float(v), 2) for v in box],
                    "box_score": round(float(box_score), 5),
                    "score": round(float(score), 5),
                    "keypoints": [[round(float(x), 2), round(float(y), 2), round(float(s), 5)] for x, y, s in kpts],
                }
                for box, box_score, score, kpts in zip(
                    self.boxes, self.box_scores, self.scores, self.keypoints, strict=True
                )
            ]
        elif self.task == "cls":
            record["topk"] = [{"class_id": c, "label": n, "score": round(p, 6)} for c, n, p in self.topk]
        else:
            assert self.labels is not None
            ids, counts = np.unique(self.labels, return_counts=True)
            record["class_pixels"] = {str(int(i)): int(c) for i, c in zip(ids, counts, strict=True)}
        return record

    def coco_results(self) -> list[dict[str, Any]]:
        """Pose people in the COCO keypoint results format, plus the file name (and frame) they belong to."""
        people = [
            PersonPrediction(self.image_id, kpts, box, float(box_score), float(box[2] * box[3]), score=float(score))
            for box, box_score, score, kpts in zip(
                self.boxes, self.box_scores, self.scores, self.keypoints, strict=True
            )
        ]
        results = to_coco_results(people)
        for result in results:
            result["file_name"] = self.frame.relative.as_posix()
            if self.frame.is_video:
                result["frame"] = self.frame.frame_index
        return results


class Predictor:
    """Runs a loaded model over frames; `unboxed` lists images a boxes file did not cover."""

    def __init__(
        self,
        weights: LoadedWeights,
        *,
        input_size: tuple[int, int] | str | None = None,
        detector: Detector | None = None,
        boxes: BoxesFile | None = None,
        box_threshold: float = 0.3,
        flip: bool = False,
        batch_size: int = 8,
        seg_mode: str = "whole",
        topk: int = 5,
        class_names: Sequence[str] | None = None,
        keypoint_set: KeypointSet | None = None,
        compile: bool = False,
    ) -> None:
        self.model = optimize_for_inference(weights.model, compile, inplace=True)
        self.config = weights.config
        self.device = next(self.model.parameters()).device
        self.input_size = (
            parse_size(input_size) if input_size is not None else input_size_of(weights.config, weights.metadata)
        )
        if batch_size < 1:
            raise UsageError(f"--batch-size {batch_size}: expected at least 1")
        if seg_mode not in SEG_MODES:
            raise UsageError(f"--seg-mode {seg_mode!r}: expected one of {', '.join(SEG_MODES)}")
        self.detector = detector if detector is not None else WholeImage()
        self.boxes, self.box_threshold, self.flip = boxes, box_threshold, flip
        self.batch_size, self.seg_mode, self.topk = batch_size, seg_mode, topk
        self.class_names = self._class_names(class_names)
        self.keypoint_set = self._keypoint_set(keypoint_set)
        self.unboxed: list[str] = []
        self._count = 0

    def _class_names(self, names: Sequence[str] | None) -> list[str]:
        count = self.config.num_classes
        if names is None:
            return [str(i) for i in range(count)]
        if len(names) != count:
            raise UsageError(f"{len(names)} class names given but the model has {count} classes")
        return list(names)

    def _keypoint_set(self, keypoint_set: KeypointSet | None) -> KeypointSet:
        count = self.config.num_keypoints
        chosen = keypoint_set if keypoint_set is not None else COCO17 if count == COCO17.num_keypoints else None
        if chosen is None:  # an unnamed layout: points only, no skeleton, no flip pairs
            names = tuple(f"keypoint_{i}" for i in range(count))
            return KeypointSet(f"{count}-keypoints", names, (), (), np.full(count, 0.05), tuple(range(count)), ())
        if chosen.num_keypoints != count:
            raise UsageError(
                f"keypoint set {chosen.name} has {chosen.num_keypoints} keypoints; the model predicts {count}"
            )
        return chosen

    def __call__(self, frames: Iterable[Frame]) -> Iterator[PredictResult]:
        task = self.config.task
        if task == "pose":
            yield from self._pose(frames)
        elif task == "seg" and self.seg_mode == "slide":
            for frame in frames:
                labels = self._segment_sliding(frame.image)
                yield PredictResult(frame, self._image_id(frame), task, labels=labels)
        else:
            for batch in _batched(frames, self.batch_size):
                yield from self._cls(batch) if task == "cls" else self._segment_whole(batch)

    def _forward(self, x: torch.Tensor) -> Any:
        """The model on one batch, without autograd (scoped here: the caller's grad mode is left alone)."""
        with torch.inference_mode():
            return self.model(x.to(self.device))

    def _image_id(self, frame: Frame) -> int:
        """COCO id from the boxes' annotation file or the numeric file name, else a running index."""
        self._count += 1
        if frame.is_video:
            return self._count
        image_id = self.boxes.image_id(frame.name) if self.boxes is not None else coco_image_id(frame.name)
        return self._count if image_id is None else image_id

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

    # --- pose ---------------------------------------------------------------------------------------------

    def _pose(self, frames: Iterable[Frame]) -> Iterator[PredictResult]:
        pending: list[tuple[Frame, np.ndarray, np.ndarray]] = []
        crops = 0
        for frame in frames:
            boxes, scores = self._person_boxes(frame)
            pending.append((frame, boxes, scores))
            crops += len(boxes)
            if crops >= self.batch_size or len(pending) >= self.batch_size:
                yield from self._pose_flush(pending)
                pending, crops = [], 0
        yield from self._pose_flush(pending)

    def _pose_flush(self, pending: list[tuple[Frame, np.ndarray, np.ndarray]]) -> Iterator[PredictResult]:
        height, width = self.input_size
        aspect = width / height
        inputs, centers, scales = [], [], []
        for frame, boxes, _ in pending:
            for box in boxes:
                center, scale = box_xywh_to_center_scale(box, aspect, BOX_PADDING)
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
            yield PredictResult(frame, image_id, "pose", boxes, box_scores, people, scores)

    def _keypoints(self, crops: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """(M, K, 3) image-pixel keypoints with heatmap-peak scores for M normalised crops."""
        heatmaps = []
        for start in range(0, len(crops), self.batch_size):
            x = torch.from_numpy(crops[start : start + self.batch_size])
            maps = self._forward(x)
            if self.flip:
                flipped = self._forward(x.flip(-1))
                maps = (maps + flip_back(flipped, self.keypoint_set.flip_pairs, shift=True)) * 0.5
            heatmaps.append(maps.float().cpu())
        maps = torch.cat(heatmaps)
        heatmap_size = (maps.shape[-2], maps.shape[-1])
        coords, peaks = HeatmapCodec(self.input_size, heatmap_size).decode(maps)
        image_xy = heatmap_to_image_coords(coords, centers, scales, heatmap_size)
        return np.concatenate([image_xy, np.clip(peaks, 0.0, 1.0)[..., None]], axis=-1)

    # --- classification and segmentation -----------------------------------------------------------------

    def _tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack([normalize_image(i) for i in images]))

    def _cls(self, frames: list[Frame]) -> Iterator[PredictResult]:
        size = self.input_size
        probabilities = torch.softmax(
            self._forward(self._tensor([_center_crop(f.image, size) for f in frames])).float(), 1
        )
        k = min(self.topk, probabilities.shape[1])
        values, indices = probabilities.topk(k, dim=1)
        for frame, vals, ids in zip(frames, values.tolist(), indices.tolist(), strict=True):
            topk = [(i, self.class_names[i], p) for i, p in zip(ids, vals, strict=True)]
            yield PredictResult(frame, self._image_id(frame), "cls", topk=topk)

    def _segment_whole(self, frames: list[Frame]) -> Iterator[PredictResult]:
        height, width = self.input_size
        resized = [cv2.resize(f.image, (width, height), interpolation=cv2.INTER_LINEAR) for f in frames]
        _, logits = self._forward(self._tensor(resized))
        for frame, frame_logits in zip(frames, logits, strict=True):
            size = frame.image.shape[:2]
            full = F.interpolate(frame_logits[None].float(), size=size, mode="bilinear", align_corners=False)
            yield PredictResult(frame, self._image_id(frame), "seg", labels=_to_labels(full[0]))

    def _segment_sliding(self, image: np.ndarray) -> np.ndarray:
        """Average logits of input-size windows with a 2/3 stride (images smaller than a window are padded)."""
        win_h, win_w = self.input_size
        height, width = image.shape[:2]
        padded = normalize_image(image)
        pad_h, pad_w = max(0, win_h - height), max(0, win_w - width)
        padded = np.pad(padded, ((0, 0), (0, pad_h), (0, pad_w)))
        full_h, full_w = padded.shape[1:]
        tops = _window_starts(full_h, win_h)
        lefts = _window_starts(full_w, win_w)
        windows = [(t, left) for t in tops for left in lefts]
        total = torch.zeros(self.config.num_classes, full_h, full_w)
        counts = torch.zeros(1, full_h, full_w)
        for start in range(0, len(windows), self.batch_size):
            chunk = windows[start : start + self.batch_size]
            x = torch.from_numpy(np.stack([padded[:, t : t + win_h, left : left + win_w] for t, left in chunk]))
            _, logits = self._forward(x)
            for (t, left), window_logits in zip(chunk, logits.float().cpu(), strict=True):
                total[:, t : t + win_h, left : left + win_w] += window_logits
                counts[:, t : t + win_h, left : left + win_w] += 1
        return _to_labels((total / counts)[:, :height, :width])


def _batched(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _window_starts(length: int, window: int) -> list[int]:
    stride = max(1, window * 2 // 3)
    starts = list(range(0, max(length - window, 0) + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def _to_labels(logits: torch.Tensor) -> np.ndarray:
    labels = logits.argmax(0).cpu().numpy()
    return labels.astype(np.uint8 if logits.shape[0] <= 256 else np.uint16)


def _center_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize the shorter side to size / 0.875 (bicubic) and cut the centre `size` (H, W)."""
    out_h, out_w = size
    height, width = image.shape[:2]
    factor = max(out_h, out_w) / CLS_CROP_RATIO / min(height, width)
    new_w, new_h = max(out_w, round(width * factor)), max(out_h, round(height * factor))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    return resized[top : top + out_h, left : left + out_w]


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


def predict(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    weights: str | os.PathLike | LoadedWeights,
    *,
    device: str | torch.device = "cpu",
    **options: Any,
) -> Iterator[PredictResult]:
    """Stream per-image results for images, folders, globs, list files, videos or `webcam:N`.

    `options` are `Predictor`'s: input_size, detector, boxes, box_threshold, flip, batch_size, seg_mode, topk,
    class_names, keypoint_set. Nothing is written; see `PredictionWriter` for files.
    """
    loaded = weights if isinstance(weights, LoadedWeights) else load_weights(weights, device)
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    return Predictor(loaded, **options)(FrameStream(sources))
