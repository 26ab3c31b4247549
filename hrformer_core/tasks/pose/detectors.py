"""Person boxes for top-down pose: one small `Detector` interface and the offline ways to fill it.

A detector maps an RGB image to boxes (N, 4) as x, y, w, h in pixels and scores (N,). Nothing here downloads
a model: boxes come from a COCO detections file, any importable callable, OpenCV's HOG people detector where
the installed OpenCV still ships it, or the whole image.
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


class WholeImage:
    """The whole image as one person box with score 1 (mmpose's `whole_image`)."""

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
        self.function: Callable[[np.ndarray], Any] = target

    def __call__(self, image_rgb: np.ndarray) -> Boxes:
        result = self.function(image_rgb)
        if not isinstance(result, tuple | list) or len(result) != 2:
            raise DataError(f"detector {self.spec}: returned {type(result).__name__}; expected (boxes, scores)")
        return as_boxes(result[0], result[1], f"detector {self.spec}")


class HogDetector:
    """OpenCV's HOG + linear SVM people detector; SVM margins become scores through a sigmoid."""

    def __init__(self) -> None:
        if not hasattr(cv2, "HOGDescriptor"):
            raise UsageError(
                f"--detector hog: OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved it to contrib); "
                "use --boxes FILE, --detector module:callable or --detector whole-image"
            )
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, image_rgb: np.ndarray) -> Boxes:
        rects, weights = self.hog.detectMultiScale(image_rgb, winStride=(8, 8), padding=(8, 8), scale=1.05)
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float64).reshape(-1)))
        return as_boxes(rects, scores, "detector hog")


def hog_available() -> bool:
    return hasattr(cv2, "HOGDescriptor")


def build_detector(spec: str | None) -> Detector:
    """`None` or "whole-image", "hog", or "module:callable"."""
    if spec is None or spec == WHOLE_IMAGE:
        return WholeImage()
    if spec == HOG:
        return HogDetector()
    return CallableDetector(spec)


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
