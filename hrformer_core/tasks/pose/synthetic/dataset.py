"""Writing the synthetic set in the real COCO keypoints layout, with a detector's boxes, and caching it.

Every image has its own random stream (seed, split, index), so a set is reproducible byte for byte and
its first images do not depend on how many follow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hrformer_core.errors import DataError
from hrformer_core.tasks.pose.keypoints import COCO17
from hrformer_core.utils.io import atomic_write, write_json

from .scene import render_image

GENERATOR_VERSION = 1
MARKER_NAME = "synthetic_pose.json"


def _detections(
    rng: np.random.Generator, image_id: int, people: list[dict[str, Any]], size_hw: tuple[int, int]
) -> list[dict[str, Any]]:
    """A detector's output: jittered boxes for most people, some duplicates, low-score false positives."""
    h, w = size_hw
    dets = []

    def add(box: np.ndarray, score: float) -> None:
        x0, y0 = np.clip(box[:2], 0, (w - 1, h - 1))
        x1, y1 = np.clip(box[:2] + box[2:], 0, (w, h))
        if x1 - x0 > 1 and y1 - y0 > 1:
            bbox = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
            dets.append({"image_id": image_id, "category_id": 1, "bbox": bbox, "score": round(score, 5)})

    for person in people:
        if rng.random() < 0.04:
            continue
        box = np.array(person["bbox"])
        jitter = rng.normal(0, 0.05, 4) * np.array([box[2], box[3], box[2], box[3]])
        add(box + jitter, float(rng.uniform(0.55, 1.0) if rng.random() < 0.85 else rng.uniform(0.2, 0.55)))
        if rng.random() < 0.2:
            jitter = rng.normal(0, 0.15, 4) * np.array([box[2], box[3], box[2], box[3]])
            add(box + jitter, float(rng.uniform(0.05, 0.4)))
    for _ in range(int(rng.poisson(0.8))):
        bh = rng.uniform(0.2, 0.8) * h
        bw = bh * rng.uniform(0.3, 0.8)
        add(np.array([rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh]), float(rng.uniform(0.01, 0.35)))
    return dets


def _split(
    out_dir: Path, split: str, count: int, seed: int, size_hw: tuple[int, int], first_id: int, with_dets: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Render and write one split's images; returns its COCO annotations and (val) detections."""
    images, annotations, dets = [], [], []
    split_code = {"train": 0, "val": 1}[split]
    for i in range(count):
        image_id = first_id + i
        rng = np.random.default_rng([seed, split_code, i])
        image, people = render_image(rng, size_hw)
        file_name = f"{image_id:012d}.jpg"
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise DataError(f"{out_dir / f'{split}2017' / file_name}: JPEG encoding failed")
        atomic_write(out_dir / f"{split}2017" / file_name, lambda p, data=encoded: p.write_bytes(data.tobytes()))
        images.append({"id": image_id, "file_name": file_name, "width": size_hw[1], "height": size_hw[0]})
        for number, person in enumerate(people, start=1):
            kps = person["keypoints"]
            annotations.append({
                "id": image_id * 100 + number,
                "image_id": image_id,
                "category_id": 1,
                "bbox": [round(v, 2) for v in person["bbox"]],
                "area": person["area"],
                "iscrowd": 0,
                "keypoints": [round(float(v), 2) if j % 3 < 2 else int(v) for j, v in enumerate(kps.reshape(-1))],
                "num_keypoints": int(np.count_nonzero(kps[:, 2] > 0)),
            })  # fmt: skip
        if with_dets:
            dets.extend(_detections(np.random.default_rng([seed, 2, i]), image_id, people, size_hw))
    coco = {
        "info": {"description": "hrformer synthetic people", "version": GENERATOR_VERSION, "seed": seed},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [COCO17.to_coco_category()],
    }
    return coco, dets


def generate_synthetic_pose(
    out_dir: str | Path, num_train: int, num_val: int, seed: int = 0, image_size: tuple[int, int] = (256, 256)
) -> dict[str, Path]:
    """Write a COCO-format synthetic people set in the standard COCO layout; same seed, same bytes.

    `image_size` is (height, width). Returns the paths: root, train_ann, val_ann, train_images,
    val_images, val_detections.
    """
    if num_train < 0 or num_val < 0:
        raise DataError(f"synthetic set sizes must be >= 0, got num_train={num_train}, num_val={num_val}")
    out = Path(out_dir)
    size_hw = (int(image_size[0]), int(image_size[1]))
    paths = _layout(out)
    train, _ = _split(out, "train", num_train, seed, size_hw, 1, with_dets=False)
    val, dets = _split(out, "val", num_val, seed, size_hw, 1_000_001, with_dets=True)
    paths["train_images"].mkdir(parents=True, exist_ok=True)
    paths["val_images"].mkdir(parents=True, exist_ok=True)
    write_json(paths["train_ann"], train, indent=None)
    write_json(paths["val_ann"], val, indent=None)
    write_json(paths["val_detections"], dets, indent=None)
    return paths


def _layout(root: Path) -> dict[str, Path]:
    """The standard COCO file layout under `root`."""
    return {
        "root": root,
        "train_ann": root / "annotations" / "person_keypoints_train2017.json",
        "val_ann": root / "annotations" / "person_keypoints_val2017.json",
        "train_images": root / "train2017",
        "val_images": root / "val2017",
        "val_detections": root / "annotations" / "person_detection_results_val2017.json",
    }


def ensure_synthetic_pose(
    cache_dir: str | Path, num_train: int, num_val: int, seed: int = 0, image_size: tuple[int, int] = (256, 256)
) -> dict[str, Path]:
    """Generate the set once into `cache_dir` and reuse it while the parameters are the same.

    A marker file with the parameters is written last, so an interrupted generation is redone.
    """
    root = Path(cache_dir)
    params = {
        "version": GENERATOR_VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "seed": int(seed),
        "image_size": [int(image_size[0]), int(image_size[1])],
    }
    marker = root / MARKER_NAME
    paths = _layout(root)
    if marker.is_file():
        try:
            current = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            current = None
        if current == params and all(p.exists() for p in paths.values()):
            return paths
        marker.unlink()
        for folder in (paths["train_images"], paths["val_images"]):
            if folder.is_dir():
                for old in folder.glob("*.jpg"):
                    old.unlink()
    generate_synthetic_pose(root, num_train, num_val, seed, image_size)
    write_json(marker, params)
    return paths
