"""Every dataset recipe starts training on a tiny tree in its dataset's standard layout (real file naming and
raw id encodings, written here): one step, then an evaluation over the dataset's full class list. Only the
run length, the batch, the crop and the evaluation resize are shrunk; model, loss, augmentation and
schedule are the recipe's."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from training_helpers import write_shapes_tree

from hrformer_core.engine import load_recipe, train


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _pair(rng: np.random.Generator, raw_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return image, rng.choice(raw_ids, (48, 64)).astype(np.uint8)


def _cityscapes(root: Path, rng: np.random.Generator) -> None:
    for split, city in (("train", "aachen"), ("val", "frankfurt")):
        for i in range(2):
            image, label = _pair(rng, [0, 7, 8, 11, 26, 33])  # 0 unlabelled (ignored); road, ..., bicycle
            stem = f"{city}_{i:06d}_000019"
            _write(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
            _write(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label)


def _ade20k(root: Path, rng: np.random.Generator) -> None:
    base = root / "ADEChallengeData2016"
    for split in ("training", "validation"):
        for i in range(2):
            image, label = _pair(rng, [0, 1, 13, 150])  # 0 ignored
            _write(base / "images" / split / f"ADE_{split[:5]}_{i + 1:08d}.jpg", image)
            _write(base / "annotations" / split / f"ADE_{split[:5]}_{i + 1:08d}.png", label)


def _image_label(raw_ids: list[int], prefix: str) -> Callable[[Path, np.random.Generator], None]:
    def write(root: Path, rng: np.random.Generator) -> None:
        for split in ("train", "val"):
            for i in range(2):
                image, label = _pair(rng, raw_ids)
                _write(root / split / "image" / f"{prefix}{i:06d}.jpg", image)
                _write(root / split / "label" / f"{prefix}{i:06d}.png", label)

    return write


SEG = {
    "cityscapes": (_cityscapes, 19),
    "ade20k": (_ade20k, 150),
    "coco-stuff": (_image_label([0, 1, 92, 182], "COCO_train2014_"), 171),
    "pascal-context": (_image_label([0, 1, 30, 59], "2008_"), 59),
}
SHRUNK = ["train.max_steps=1", "train.batch_size=2", "train.workers=0", "train.eval_interval_steps=1"]


@pytest.mark.parametrize("dataset", sorted(SEG))
def test_segmentation_recipe_starts_training_on_its_layout(dataset: str, tmp_path: Path) -> None:
    write, classes = SEG[dataset]
    root = tmp_path / "data"
    write(root, np.random.default_rng(0))
    overrides = [f"data.root={root}", *SHRUNK, "data.crop_size=[32,32]", "data.eval_short_side=0"]
    result = train(load_recipe(f"seg-s-ocr-{dataset}", overrides), project=tmp_path / "runs")
    assert result.global_step == 1 and result.metrics["images"] == 2
    assert np.isfinite(result.metrics["mIoU"]) and 0.0 <= result.metrics["mIoU"] <= 1.0
    per_class = json.loads((result.run_dir / "eval" / "per_class_iou.json").read_text())["metrics"]["per_class"]
    assert len(per_class) == classes  # one row per class of the dataset, with its name
    assert all(isinstance(row["class"], str) and row["class"] for row in per_class)


@pytest.mark.parametrize("recipe", ["cls-t", "cls-s", "cls-b", "cls-hrnet-t", "cls-hrnet-s", "cls-hrnet-b"])
def test_imagenet_recipe_starts_training_on_the_folder_layout(recipe: str, tmp_path: Path) -> None:
    """The HRFormer recipes and their HRNet counterparts (Table 11) through the same path, with the full
    ImageNet augmentation (RandAugment, erasing, mixup/CutMix)."""
    root = write_shapes_tree(tmp_path / "data", classes=3, per_class=2)
    overrides = [f"data.root={root}", *SHRUNK, "data.input_size=[32,32]", "eval.batch_size=6"]
    result = train(load_recipe(recipe, overrides), project=tmp_path / "runs")
    assert result.global_step == 1 and result.metrics["samples"] == 6
    assert 0.0 <= result.metrics["top1"] <= 100.0 and result.metrics["top5"] == 100.0  # 3 classes
