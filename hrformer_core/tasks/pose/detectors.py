"""Person boxes for top-down pose: one small `Detector` interface and the offline ways to fill it.

A detector maps an RGB image to boxes (N, 4) as x, y, w, h in pixels and scores (N,). Nothing here downloads
a model: boxes come from a COCO detections file, any importable callable, OpenCV's HOG people detector (the
default: its SVM ships inside the OpenCV wheel; OpenCV 5 keeps it in the contrib build only) or the whole image.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from hrformer_core.errors import DataError, UsageError
from hrformer_core.predict.sources import coco_image_id

Boxes = tuple[np.ndarray, np.ndarray]
WHOLE_IMAGE = "whole-image"
HOG = "hog"
# Forced: where opencv-python-headless was installed after it, the two share cv2/ and its files won.
INSTALL_HOG = "pip install --force-reinstall --no-deps 'opencv-contrib-python-headless>=4.8,<6'"
STRONGER_BOXES = "--boxes dets.json or --detector module:callable"


class Detector(Protocol):
    def __call__(self, image_rgb: np.ndarray) -> Boxes: ...


def as_boxes(boxes: Any, scores: Any, source: str) -> Boxes:
    """Validate and convert a detector's output to float64 (N, 4) boxes and (N,) scores."""
    try:
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: boxes must be (N, 4) x, y, w, h and scores (N,) numbers ({exc})") from None
    if len(boxes) != len(scores):
        raise DataError(f"{source}: {len(boxes)} boxes but {len(scores)} scores; expected one score per box")
    return boxes, scores


def keep_boxes(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> Boxes:
    """Drop boxes scoring below `threshold` and boxes with no area."""
    keep = (scores >= threshold) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    return boxes[keep], scores[keep]


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    A box is dropped when its IoU with a better-scoring kept box is above `iou_threshold`.
    """
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    areas = boxes[:, 2] * boxes[:, 3]
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        width = np.clip(np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]), 0, None)
        height = np.clip(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]), 0, None)
        overlap = width * height
        order = rest[overlap <= iou_threshold * (areas[best] + areas[rest] - overlap)]
    return np.array(kept, dtype=np.int64)


class WholeImage:
    """The whole image as one person box with score 1 (mmpose's `whole_image`)."""

    def __init__(self, reason: str | None = None) -> None:
        self.description = "the whole image as one person box (whole-image)" + (f": {reason}" if reason else "")

    def __call__(self, image_rgb: np.ndarray) -> Boxes:
        height, width = image_rgb.shape[:2]
        return np.array([[0.0, 0.0, width, height]]), np.ones(1)


class CallableDetector:
    """Any Python callable `f(image_rgb) -> (boxes_xywh, scores)`, named as `module:attribute`."""

    def __init__(self, spec: str) -> None:
        module_name, _, attribute = spec.partition(":")
        if not module_name or not attribute:
            raise UsageError(f"--detector {spec!r}: expected whole-image, hog or module:callable")
        if os.getcwd() not in sys.path:  # let `my_detector:detect` find my_detector.py in the working folder
            sys.path.insert(0, os.getcwd())
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise UsageError(f"--detector {spec!r}: cannot import module {module_name!r} ({exc})") from None
        for part in attribute.split("."):
            if not hasattr(target, part):
                raise UsageError(f"--detector {spec!r}: module {module_name!r} has no attribute {attribute!r}")
            target = getattr(target, part)
        if not callable(target):
            raise UsageError(f"--detector {spec!r}: {attribute!r} is not callable")
        self.spec = spec
        self.description = f"--detector {spec}"
        self.function: Callable[[np.ndarray], Any] = target

    def __call__(self, image_rgb: np.ndarray) -> Boxes:
        result = self.function(image_rgb)
        if not isinstance(result, tuple | list) or len(result) != 2:
            raise DataError(f"detector {self.spec}: returned {type(result).__name__}; expected (boxes, scores)")
        return as_boxes(result[0], result[1], f"detector {self.spec}")


class HogDetector:
    """OpenCV's HOG + linear SVM people detector (Dalal & Triggs, 64x128 windows), with our own box handling.

    OpenCV's window grouping keeps a window only where several overlap with a positive margin: on the COCO
    sample it found 1 of 12 people. Here every window with an SVM margin >= `min_margin` is kept, shrunk to
    the person inside it (the SVM was trained on windows with a margin around the person), and overlapping
    windows are merged by NMS; scores are sigmoid(margin), so `--box-threshold 0.5` keeps margins >= 0.
    `min_margin`, the shrink and the NMS IoU were chosen on a synthetic calibration set (recall at about
    1.5 false boxes per image), then measured on the COCO sample (docs/design.md). Larger images are first
    downscaled to `max_side`, COCO's size, where it was measured: searched at 1280 px, the COCO photos at 3x
    their size gave 5x the false boxes (23.5 per image) for the same 4 of 12 people; 1920x1280 takes 0.5 s.
    """

    window_inner = (0.1, 0.05)  # fraction of the window's width, height cut from each side

    def __init__(self, min_margin: float = -0.5, nms_iou: float = 0.5, max_side: int = 640) -> None:
        if not hog_available():
            raise UsageError(
                f"--detector hog: OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved it to contrib); "
                f"{INSTALL_HOG}, or use {STRONGER_BOXES} or --detector whole-image"
            )
        self.min_margin, self.nms_iou, self.max_side = min_margin, nms_iou, max_side
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.description = (
            f"OpenCV {cv2.__version__} HOG people detector (the default: it finds upright people at least 115 px "
            f"tall at 640 px, a third of the COCO sample's people; {STRONGER_BOXES} give better boxes)"
        )

    def __call__(self, image_rgb: np.ndarray) -> Boxes:
        height, width = image_rgb.shape[:2]
        factor = min(1.0, self.max_side / max(height, width))
        image = image_rgb
        if factor < 1.0:
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)
        window_width, window_height = self.hog.winSize
        if image.shape[0] < window_height or image.shape[1] < window_width:  # no person fits; OpenCV 4.14
            return np.zeros((0, 4)), np.zeros(0)  # and 5.1 corrupt their heap on such images (72x96 crashed)
        windows, margins = self.hog.detectMultiScale(
            image, hitThreshold=self.min_margin, winStride=(8, 8), padding=(8, 8), scale=1.05, groupThreshold=0
        )
        windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4) / factor
        margins = np.asarray(margins, dtype=np.float64).reshape(-1)
        cut = windows[:, 2:] * np.array(self.window_inner)
        boxes = np.concatenate([windows[:, :2] + cut, windows[:, 2:] - 2 * cut], axis=1)
        x0, y0 = np.clip(boxes[:, 0], 0, width), np.clip(boxes[:, 1], 0, height)
        x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
        y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
        boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
        kept = box_nms(boxes, margins, self.nms_iou)
        return boxes[kept], 1.0 / (1.0 + np.exp(-margins[kept]))


def hog_available() -> bool:
    return hasattr(cv2, "HOGDescriptor")


def build_detector(spec: str | None) -> Detector:
    """`None` (the default: HOG where OpenCV has it, else the whole image), whole-image, hog or module:callable."""
    if spec is None:
        if hog_available():
            return HogDetector()
        return WholeImage(
            f"OpenCV {cv2.__version__} has no HOG people detector ({INSTALL_HOG} brings it back), so several "
            f"people get one skeleton; pass {STRONGER_BOXES}"
        )
    if spec == WHOLE_IMAGE:
        return WholeImage()
    if spec == HOG:
        return HogDetector()
    return CallableDetector(spec)


def describe_detector(detector: Detector) -> str:
    """One line naming where a predictor's person boxes come from, for the note `predict` prints first."""
    description = getattr(detector, "description", None)
    if isinstance(description, str):
        return description
    return f"the callable {getattr(detector, '__qualname__', type(detector).__name__)}"


class BoxesFile:
    """Person boxes from a COCO detections file (`[{image_id, bbox: [x, y, w, h], score, category_id}]`).

    Images are matched by file name through a COCO annotation file's `images` list when one is given, else
    by `image_id = int(file stem)` as COCO names its images (`000000000785.jpg` is image 785). Only
    category 1 (person) is used when entries carry a category.
    """

    def __init__(self, path: str | os.PathLike, annotations: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self.by_image: dict[int, list[tuple[list[float], float]]] = {}
        for index, entry in enumerate(_load_json_list(self.path, "a COCO detections list")):
            if not isinstance(entry, dict) or "image_id" not in entry or "bbox" not in entry:
                raise DataError(f"{self.path}: entry {index} lacks image_id or bbox; expected COCO detection results")
            if entry.get("category_id", 1) != 1:
                continue
            bbox = entry["bbox"]
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise DataError(f"{self.path}: entry {index} bbox {bbox!r} is not [x, y, w, h]")
            self.by_image.setdefault(int(entry["image_id"]), []).append((bbox, float(entry.get("score", 1.0))))
        self.ids_by_name: dict[str, int] | None = None
        if annotations is not None:
            self.ids_by_name = _image_ids(Path(annotations))

    def image_id(self, file_name: str) -> int | None:
        """The COCO image id of a file name, or None when it has none."""
        if self.ids_by_name is not None:
            return self.ids_by_name.get(file_name)
        return coco_image_id(file_name)

    def boxes_for(self, file_name: str) -> Boxes | None:
        """The image's boxes and scores (possibly none), or None when the file does not cover the image."""
        image_id = self.image_id(file_name)
        covered = image_id is not None and (
            image_id in self.by_image or (self.ids_by_name is not None and file_name in self.ids_by_name)
        )
        if not covered:
            return None
        entries = self.by_image.get(image_id, [])
        return as_boxes([b for b, _ in entries], [s for _, s in entries], str(self.path))


def _load_json_list(path: Path, expected: str) -> list[Any]:
    if not path.is_file():
        raise UsageError(f"{path}: no such file; expected {expected} (JSON)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); expected {expected}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: top level is {type(data).__name__}; expected {expected}")
    return data


def _image_ids(path: Path) -> dict[str, int]:
    """file_name -> id from a COCO annotation file's `images`."""
    if not path.is_file():
        raise UsageError(f"{path}: no such annotation file; expected COCO JSON with an images list")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {Path(image["file_name"]).name: int(image["id"]) for image in data["images"]}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot read images[].file_name/id ({exc!r}); expected a COCO annotation file"
        ) from None
