"""Segmentation layouts: tiny trees with the real file naming and id encodings, read back as train ids."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hrformer_core.errors import DataError
from hrformer_core.tasks.seg.datasets import SegDataset
from hrformer_core.tasks.seg.layouts import get_layout


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _image(h: int = 8, w: int = 12) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _dataset(root: Path, layout: str, split: str = "val", num_classes: int | None = None) -> SegDataset:
    spec = get_layout(layout)
    pairs = spec.list_pairs(root, spec.splits[split])
    return SegDataset(pairs, spec, num_classes or spec.num_classes, max_bad_fraction=1.0, where=str(root))


def test_cityscapes_label_ids_map_to_train_ids(tmp_path: Path) -> None:
    # cityscapesScripts: road id 7 -> 0, car id 26 -> 13, bicycle id 33 -> 18; ego vehicle 1, ground 6,
    # guard rail 14 and polegroup 18 are not evaluated -> 255.
    raw = np.array([[7, 26, 33, 1], [6, 14, 18, 24]], np.uint8).repeat(2, 0).repeat(3, 1)
    city = "aachen"
    _write(tmp_path / "leftImg8bit/val" / city / "aachen_000000_000019_leftImg8bit.png", _image(4, 12))
    _write(tmp_path / "gtFine/val" / city / "aachen_000000_000019_gtFine_labelIds.png", raw)
    _write(tmp_path / "gtFine/val" / city / "aachen_000000_000019_gtFine_color.png", _image(4, 12))
    sample = _dataset(tmp_path, "cityscapes")[0]
    expected = np.array([[0, 13, 18, 255], [255, 255, 255, 11]]).repeat(2, 0).repeat(3, 1)
    np.testing.assert_array_equal(sample["label"].numpy(), expected)
    assert sample["image"].shape == (3, 4, 12)


def test_ade20k_zero_is_ignored_and_ids_shift_down(tmp_path: Path) -> None:
    base = tmp_path / "ADEChallengeData2016"
    raw = np.array([[0, 1, 150, 75]], np.uint8).repeat(3, 0)
    _write(base / "images/validation/ADE_val_00000001.jpg", _image(3, 4))
    _write(base / "annotations/validation/ADE_val_00000001.png", raw)
    label = _dataset(tmp_path, "ade20k")[0]["label"].numpy()
    np.testing.assert_array_equal(label, np.array([[255, 0, 149, 74]]).repeat(3, 0))


def test_coco_stuff_171_classes_from_182_ids(tmp_path: Path) -> None:
    # 0 unlabeled -> ignore; 1 (person) -> 0; 11 -> 10; 13 -> 11 (12 is unused); 12 unused -> ignore;
    # 182 -> 170 (the last of the 171 classes); 92 (the first stuff id) -> 80 (80 used ids below it).
    raw = np.array([[0, 1, 11, 13, 12, 182, 92]], np.uint8)
    _write(tmp_path / "val/image/COCO_train2014_000000000077.jpg", _image(1, 7))
    _write(tmp_path / "val/label/COCO_train2014_000000000077.png", raw)
    label = _dataset(tmp_path, "coco_stuff")[0]["label"].numpy()
    np.testing.assert_array_equal(label, [[255, 0, 10, 11, 255, 170, 80]])


def test_pascal_context_background_ignored(tmp_path: Path) -> None:
    raw = np.array([[0, 1, 59, 30]], np.uint8)
    _write(tmp_path / "train/image/2008_000002.jpg", _image(1, 4))
    _write(tmp_path / "train/label/2008_000002.png", raw)
    label = _dataset(tmp_path, "pascal_context", split="train")[0]["label"].numpy()
    np.testing.assert_array_equal(label, [[255, 0, 58, 29]])


def test_missing_root_and_label_folder_say_where(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.root: .*nowhere not found; expected the Cityscapes layout"):
        _dataset(tmp_path / "nowhere", "cityscapes")
    _write(tmp_path / "leftImg8bit/val/bonn/bonn_000000_000019_leftImg8bit.png", _image())
    with pytest.raises(DataError, match=r"gtFine/val not found: the Cityscapes layout .* needs"):
        _dataset(tmp_path, "cityscapes")
    (tmp_path / "gtFine/val/bonn").mkdir(parents=True)
    with pytest.raises(
        DataError, match=r"1 of 1 images have no label file .*looked for .*bonn_000000_000019_gtFine_labelIds"
    ):
        _dataset(tmp_path, "cityscapes")


def test_bad_pairs_are_skipped_counted_and_named(tmp_path: Path) -> None:
    good = np.ones((8, 12), np.uint8)
    for name in ("a", "b", "c", "d"):
        _write(tmp_path / f"val/image/{name}.png", _image())
    _write(tmp_path / "val/label/a.png", good)
    _write(tmp_path / "val/label/b.png", np.ones((8, 10), np.uint8))  # wrong size
    data = cv2.imencode(".png", good)[1].tobytes()
    (tmp_path / "val/label/c.png").write_bytes(data[: len(data) // 2])  # truncated
    _write(tmp_path / "val/label/d.png", np.full((8, 12), 7, np.uint8))  # id 7 with 5 classes
    dataset = _dataset(tmp_path, "folder", num_classes=5)
    samples = [dataset[i] for i in range(4)]
    assert [bool(s["readable"]) for s in samples] == [True, False, False, False]
    bad = dataset.bad_images
    assert "label is 10x8 but its image b.png is 12x8" in bad[str(tmp_path / "val/label/b.png")]
    assert "truncated PNG" in bad[str(tmp_path / "val/label/c.png")]
    assert "label id 7 is not one of the train ids below data.num_classes" in bad[str(tmp_path / "val/label/d.png")]
    assert dataset.unreadable_indices(bad) == {1, 2, 3}


def test_training_replaces_bad_pairs_and_stops_past_the_limit(tmp_path: Path) -> None:
    from hrformer_core.tasks.seg.transforms import SegAugment

    for name in ("a", "b"):
        _write(tmp_path / f"train/image/{name}.png", _image())
    _write(tmp_path / "train/label/a.png", np.ones((8, 12), np.uint8))
    _write(tmp_path / "train/label/b.png", np.ones((3, 3), np.uint8))
    spec = get_layout("folder")
    pairs = spec.list_pairs(tmp_path, "train")
    dataset = SegDataset(pairs, spec, 3, crop_hw=(6, 6), augment_options=SegAugment(), max_bad_fraction=0.5)
    sample = dataset[1]
    assert sample["index"] == 0 and sample["label"].shape == (6, 6)
    assert list(dataset.bad_images) == [str(tmp_path / "train/label/b.png")]
    strict = SegDataset(pairs, spec, 3, crop_hw=(6, 6), augment_options=SegAugment(), max_bad_fraction=0.0)
    _write(tmp_path / "train/label/a.png", np.ones((1, 1), np.uint8))
    with pytest.raises(DataError, match=r"2 of 2 image/label pairs .* cannot be used"):
        strict[0]
