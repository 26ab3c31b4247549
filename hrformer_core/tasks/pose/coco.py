"""COCO top-down keypoint dataset: one sample per person box (ground truth or detector boxes).

Standard layout: `root/annotations/person_keypoints_{split}2017.json` and `root/{split}2017/*.jpg`;
an explicit `ann_file` / `image_dir` is accepted too. Unreadable images (missing, truncated, corrupt) are
skipped and reported through `bad_images`: for training a sample is replaced by the next person of another
image, deterministically; for evaluation (`replace_unreadable=False`) the sample is marked unreadable and its
prediction left out (`unreadable_indices`), so no person is scored twice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from hrformer_core.data.images import UnreadableImage, read_image
from hrformer_core.data.tolerant import TolerantDataset
from hrformer_core.errors import DataError
from hrformer_core.tasks.pose.codecs import HeatmapCodec
from hrformer_core.tasks.pose.keypoints import KeypointSet
from hrformer_core.tasks.pose.transforms import TopDownAugment, TopDownTransform, box_xywh_to_center_scale

LAYOUT = "root/annotations/person_keypoints_{split}2017.json and root/{split}2017/"
DETECTIONS_SOURCE = (
    "the person detections file COCO_val2017_detections_AP_H_56_person.json is published with HRNet's data "
    "preparation (https://github.com/leoxiaobin/deep-high-resolution-net.pytorch#data-preparation)"
)
WHERE_TO_GET = (
    "point at it with data.root=/path/to/coco or HRFORMER_COCO=/path/to/coco; COCO 2017 is published at "
    f"https://cocodataset.org/#download and {DETECTIONS_SOURCE}"
)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: {what} is not valid JSON ({exc})") from exc


def _keypoint_category(data: dict[str, Any], path: Path) -> dict[str, Any]:
    categories = data["categories"]
    with_keypoints = [c for c in categories if isinstance(c, dict) and isinstance(c.get("keypoints"), list)]
    if not with_keypoints:
        raise DataError(f"{path}: no entry of 'categories' has a 'keypoints' list; a COCO keypoints file is expected")
    people = [c for c in with_keypoints if c.get("id") == 1]
    return people[0] if people else with_keypoints[0]


def _check_images(images: list[Any], path: Path) -> None:
    for i, image in enumerate(images):
        if (
            not isinstance(image, dict)
            or not isinstance(image.get("id"), int)
            or not isinstance(image.get("file_name"), str)
            or not all(_number(image.get(k)) and image[k] > 0 for k in ("width", "height"))
        ):
            raise DataError(f"{path}: images[{i}] needs an integer 'id', a 'file_name' and positive 'width'/'height'")


def _check_annotation(ann: Any, i: int, num_keypoints: int, image_ids: set[int], path: Path) -> None:
    where = f"{path}: annotations[{i}]"
    if not isinstance(ann, dict):
        raise DataError(f"{where} is not an object")
    if ann.get("image_id") not in image_ids:
        raise DataError(f"{where} refers to image_id {ann.get('image_id')!r}, which is not in 'images'")
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox):
        raise DataError(f"{where}.bbox must be 4 numbers [x, y, w, h], got {bbox!r}")
    keypoints = ann.get("keypoints")
    if not isinstance(keypoints, list) or len(keypoints) != 3 * num_keypoints:
        count = len(keypoints) if isinstance(keypoints, list) else keypoints
        raise DataError(f"{where}.keypoints has {count} values; expected {3 * num_keypoints} (x, y, v per keypoint)")
    if not all(_number(v) for v in keypoints):
        raise DataError(f"{where}.keypoints must contain only numbers")


def load_coco_keypoints(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Read and validate a COCO keypoints file: (keypoint category, images, that category's annotations)."""
    data = _read_json(path, "annotation file")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with 'images', 'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: missing or non-list '{key}'; a COCO keypoints file is expected")
    category = _keypoint_category(data, path)
    _check_images(data["images"], path)
    image_ids = {image["id"] for image in data["images"]}
    num_keypoints = len(category["keypoints"])
    annotations = []
    for i, ann in enumerate(data["annotations"]):
        if isinstance(ann, dict) and ann.get("category_id", category["id"]) != category["id"]:
            continue
        _check_annotation(ann, i, num_keypoints, image_ids, path)
        annotations.append(ann)
    return category, data["images"], annotations


def _clean_box(bbox: list[float], width: float, height: float) -> list[float] | None:
    """The reference's box cleaning: clip to the image, drop empty boxes."""
    x, y, w, h = bbox
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 > x1 and y2 > y1:
        return [x1, y1, x2 - x1, y2 - y1]
    return None


class CocoKeypoints(TolerantDataset):
    """Top-down COCO keypoints: each item is one person crop with its heatmap target.

    Items: `image` float32 (3, H, W), `target` (K, h, w), `target_weight` (K,), and `meta` with
    `index` (record used), `requested_index`, `image_id`, `center`, `scale` (pixels), `rotation`,
    `flip`, `box_score`, `area` (padded box area, as the reference OKS-NMS uses) and `keypoints`
    (K, 3) in image pixels (zeros for detector boxes), and `readable` (False for the blank sample standing in
    for an unreadable image when `replace_unreadable` is off). With DataLoader workers, call
    `record_skipped(batch)` in the main process so `bad_images` (path -> reason) sees every skip.
    `keep_empty_boxes` and `apply_exif_orientation` choose between our reading and the reference's
    (docs/pose-eval-parity.md).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        *,
        ann_file: str | Path | None = None,
        image_dir: str | Path | None = None,
        det_file: str | Path | None = None,
        det_threshold: float = 0.0,
        keep_empty_boxes: bool = True,
        apply_exif_orientation: bool = False,
        input_size_hw: tuple[int, int] = (256, 192),
        heatmap_size_hw: tuple[int, int] | None = None,
        sigma: float = 2.0,
        unbiased_encoding: bool = False,
        augment: TopDownAugment | None = None,
        padding: float = 1.25,
        keypoint_set: KeypointSet | None = None,
        seed: int = 0,
        max_bad_fraction: float = 0.01,
        replace_unreadable: bool = True,
    ) -> None:
        self.ann_file, self.image_dir = self._resolve_paths(root, split, ann_file, image_dir)
        category, images, annotations = load_coco_keypoints(self.ann_file)
        self.category_id = int(category["id"])
        self.keypoint_set = keypoint_set or KeypointSet.from_coco_category(category)
        if self.keypoint_set.num_keypoints != len(category["keypoints"]):
            raise DataError(
                f"{self.ann_file}: category has {len(category['keypoints'])} keypoints but the keypoint set "
                f"'{self.keypoint_set.name}' has {self.keypoint_set.num_keypoints}"
            )
        self.images = images
        self.input_size_hw = (int(input_size_hw[0]), int(input_size_hw[1]))
        self.heatmap_size_hw = heatmap_size_hw or (
            math.ceil(self.input_size_hw[0] / 4),
            math.ceil(self.input_size_hw[1] / 4),
        )
        self.padding = padding
        self.transform = TopDownTransform(self.input_size_hw, self.keypoint_set, augment)
        self.codec = HeatmapCodec(self.input_size_hw, self.heatmap_size_hw, sigma, unbiased=unbiased_encoding)
        self.seed, self.epoch = int(seed), 0
        self.max_bad_fraction = max_bad_fraction
        self.replace_unreadable = replace_unreadable
        self.bad_images: dict[str, str] = {}
        self.num_unknown_detections = 0
        self.keep_empty_boxes = keep_empty_boxes
        self.num_empty_boxes = 0
        # COCO's annotations are in the stored pixel grid; the reference (mmcv.imread) rotates by EXIF.
        self.imread_flags = cv2.IMREAD_COLOR | (0 if apply_exif_orientation else cv2.IMREAD_IGNORE_ORIENTATION)
        self.det_file = Path(det_file) if det_file is not None else None
        if self.det_file is None:
            self._set_records(self._gt_records(annotations))
        else:
            self._set_records(self._det_records(self.det_file, det_threshold))

    @staticmethod
    def _resolve_paths(
        root: str | Path | None, split: str, ann_file: str | Path | None, image_dir: str | Path | None
    ) -> tuple[Path, Path]:
        layout = LAYOUT.format(split=split)
        if ann_file is None:
            if root is None:
                raise DataError("no dataset given: pass a root folder (" + layout + ") or an ann_file")
            root = Path(root)
            if not root.is_dir():
                raise DataError(f"{root}: dataset folder not found; expected the COCO layout {layout}; {WHERE_TO_GET}")
            ann_path = root / "annotations" / f"person_keypoints_{split}2017.json"
        else:
            ann_path = Path(ann_file)
        if not ann_path.is_file():
            raise DataError(
                f"{ann_path}: annotation file not found; expected the COCO layout {layout}; {WHERE_TO_GET}"
            )
        if image_dir is not None:
            image_path = Path(image_dir)
        elif root is not None:
            image_path = Path(root) / f"{split}2017"
        else:
            image_path = ann_path.parent
        if not image_path.is_dir():
            raise DataError(
                f"{image_path}: image folder not found; expected the COCO layout {layout}; {WHERE_TO_GET}"
            )
        return ann_path, image_path

    def _gt_records(self, annotations: list[dict[str, Any]]) -> list[tuple[int, list[float], list[float], float]]:
        """Ground-truth people kept by the reference rules: not crowd, box inside the image, keypoints labelled."""
        position = {image["id"]: i for i, image in enumerate(self.images)}
        records = []
        for ann in annotations:
            image = self.images[position[ann["image_id"]]]
            if ann.get("iscrowd", 0) or ("area" in ann and not ann["area"] > 0):
                continue
            box = _clean_box(ann["bbox"], image["width"], image["height"])
            if box is None or max(ann["keypoints"]) == 0 or ann.get("num_keypoints", 1) == 0:
                continue
            records.append((position[ann["image_id"]], box, ann["keypoints"], 1.0))
        return records

    def _det_records(self, path: Path, threshold: float) -> list[tuple[int, list[float], list[float], float]]:
        """Person boxes from a COCO results file (category of the keypoints, score >= threshold).

        Boxes with w <= 0 or h <= 0 are counted in `num_empty_boxes` and kept, as the reference does (its crop
        comes from the aspect-ratio rule, or is image pixel (0, 0) repeated when both are 0), unless
        `keep_empty_boxes` is off.
        """
        if not path.is_file():
            raise DataError(
                f"{path}: detection file not found; expected a COCO results JSON list ({DETECTIONS_SOURCE}), "
                "or data.val_boxes=gt for the ground-truth boxes"
            )
        detections = _read_json(path, "detection file")
        if not isinstance(detections, list):
            raise DataError(f"{path}: expected a JSON list of {{image_id, category_id, bbox, score}} detections")
        position = {image["id"]: i for i, image in enumerate(self.images)}
        records, unknown = [], 0
        zeros = [0.0] * (3 * self.keypoint_set.num_keypoints)
        for i, det in enumerate(detections):
            if (
                not isinstance(det, dict)
                or not isinstance(det.get("bbox"), list)
                or len(det["bbox"]) != 4
                or not all(_number(v) for v in det["bbox"])
                or not _number(det.get("score"))
            ):
                raise DataError(f"{path}: entry {i} needs 'image_id', 'bbox' [x, y, w, h] and a numeric 'score'")
            if det.get("category_id", self.category_id) != self.category_id or det["score"] < threshold:
                continue
            if det.get("image_id") not in position:
                unknown += 1
                continue
            empty = not (det["bbox"][2] > 0 and det["bbox"][3] > 0)
            self.num_empty_boxes += int(empty)
            if self.keep_empty_boxes or not empty:
                records.append((position[det["image_id"]], det["bbox"], zeros, float(det["score"])))
        if detections and unknown == len(detections):
            raise DataError(f"{path}: none of its detections refers to an image of {self.ann_file}")
        self.num_unknown_detections = unknown
        return records

    def _set_records(self, records: list[tuple[int, list[float], list[float], float]]) -> None:
        if not records:
            raise DataError(f"{self.ann_file}: no usable person boxes (after the reference filtering)")
        num_kpts = self.keypoint_set.num_keypoints
        aspect = self.input_size_hw[1] / self.input_size_hw[0]
        boxes = [box_xywh_to_center_scale(box, aspect, self.padding) for _, box, _, _ in records]
        self.image_index = np.array([r[0] for r in records], dtype=np.int64)
        self.centers = np.array([c for c, _ in boxes], dtype=np.float64)
        self.scales = np.array([s for _, s in boxes], dtype=np.float64)
        self.keypoints = np.array([r[2] for r in records], dtype=np.float32).reshape(-1, num_kpts, 3)
        self.box_scores = np.array([r[3] for r in records], dtype=np.float32)

    def item_count(self) -> int:
        return len(self.images)

    def item_description(self) -> str:
        return f"images under {self.image_dir}"

    def __len__(self) -> int:
        return len(self.image_index)

    def image_path(self, index: int) -> Path:
        """Path of the image of record `index`."""
        return self.image_dir / self.images[self.image_index[index]]["file_name"]



    def _read_image(self, path: Path) -> np.ndarray:
        """RGB pixels, or UnreadableImage saying why not."""
        return read_image(path, self.imread_flags)

    def _replacement_path(self, index: int) -> Iterator[int]:
        """Record indices tried, in order, when record `index` cannot be loaded: one per other image."""
        seen: set[int] = set()
        for step in range(len(self)):
            j = (index + step) % len(self)
            if self.image_index[j] not in seen:
                seen.add(self.image_index[j])
                yield j


    def _try_read(self, index: int) -> np.ndarray | None:
        """The image of record `index`, or None (noting the image in `bad_images`) when it cannot be read."""
        path = self.image_path(index)
        if str(path) in self.bad_images:
            return None
        try:
            return self._read_image(path)
        except UnreadableImage as exc:
            self._mark_bad(path, exc.reason)
            return None

    def _load(self, index: int) -> tuple[int, np.ndarray | None]:
        """(record used, its image); without replacement the image is None when record `index`'s is unreadable."""
        if not self.replace_unreadable:
            return index, self._try_read(index)
        for j in self._replacement_path(index):
            image = self._try_read(j)
            if image is not None:
                return j, image
        raise DataError(f"no image of {self.ann_file} under {self.image_dir} can be read")

    def _note_bad(self, index: int) -> None:
        """Note in this process the unreadable image of record `index` that a DataLoader worker found."""
        path = self.image_path(index)
        if str(path) not in self.bad_images:
            try:
                self._read_image(path)
                reason = "could not be read in a DataLoader worker"
            except UnreadableImage as exc:
                reason = exc.reason
            self._mark_bad(path, reason)

    def record_skipped(self, batch: dict[str, Any]) -> None:
        """Add to `bad_images` the images that (worker) samples of a collated batch had to skip."""
        meta = batch["meta"]
        requested = np.asarray(meta["requested_index"]).reshape(-1)
        used = np.asarray(meta["index"]).reshape(-1)
        readable = np.asarray(meta["readable"]).reshape(-1)
        for req, final, ok in zip(requested.tolist(), used.tolist(), readable.tolist(), strict=True):
            if not ok:
                self._note_bad(req)
            if req == final:
                continue
            for j in self._replacement_path(req):
                if j == final:
                    break
                self._note_bad(j)

    def unreadable_indices(self, bad_images: Collection[str]) -> set[int]:
        """Records whose image is among `bad_images` (paths, as `bad_images` holds them, e.g. merged over ranks).

        Without replacement their samples are blank stand-ins, whose predictions evaluation leaves out.
        """
        bad = [i for i, image in enumerate(self.images) if str(self.image_dir / image["file_name"]) in bad_images]
        return set(np.flatnonzero(np.isin(self.image_index, bad)).tolist())

    def __getitem__(self, index: int) -> dict[str, Any]:
        used, image = self._load(index)
        readable = image is not None
        if image is None:  # a blank stand-in, so the batch keeps its shape; its prediction is dropped
            entry = self.images[self.image_index[index]]
            image = np.zeros((int(entry["height"]), int(entry["width"]), 3), np.uint8)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = self.transform(image, self.centers[used], self.scales[used], self.keypoints[used], rng=rng)
        target, weight = self.codec.encode(sample.keypoints, sample.visible)
        meta = {
            "readable": readable,
            "index": used,
            "requested_index": index,
            "image_id": int(self.images[self.image_index[used]]["id"]),
            "center": sample.center.astype(np.float32),
            "scale": sample.scale.astype(np.float32),
            "rotation": np.float32(sample.rotation),
            "flip": sample.flipped,
            "box_score": self.box_scores[used],
            "area": np.float32(np.prod(self.scales[used])),
            "keypoints": self.keypoints[used],
        }
        return {
            "image": torch.from_numpy(sample.image),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight),
            "meta": meta,
        }
