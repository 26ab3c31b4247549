"""Shipped class names of the standard segmentation datasets: counts, known entries, label ids, palette, predict."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hrformer_core.tasks.seg.class_names import (
    ADE20K_CLASSES,
    COCO_RAW_NAMES,
    COCO_STUFF_CLASSES,
    COCO_STUFF_UNUSED_IDS,
    COCO_STUFF_USED_IDS,
    PASCAL_CONTEXT_CLASSES,
)
from hrformer_core.tasks.seg.datasets import SegDataset
from hrformer_core.tasks.seg.draw import palette
from hrformer_core.tasks.seg.layouts import LAYOUTS, get_layout, names_for_classes


@pytest.mark.parametrize(
    ("layout", "count", "known"),
    [
        ("cityscapes", 19, {0: "road", 13: "car", 18: "bicycle"}),
        # objectInfo150: 1 wall, 3 sky, 13 person, 21 car, 150 flag (stored ids; train id = stored - 1)
        ("ade20k", 150, {0: "wall", 2: "sky", 12: "person", 20: "car", 149: "flag"}),
        # COCO ids 1 person, 11 fire hydrant, 13 stop sign (12 unused), 92 banner (first stuff), 182 wood
        ("coco_stuff", 171, {0: "person", 10: "fire hydrant", 11: "stop sign", 80: "banner", 170: "wood"}),
        # PyTorch-Encoding's 59: aeroplane first, person 37th, wood last
        ("pascal_context", 59, {0: "aeroplane", 36: "person", 58: "wood"}),
    ],
)
def test_layout_class_names(layout: str, count: int, known: dict[int, str]) -> None:
    names = get_layout(layout).class_names
    assert len(names) == count == get_layout(layout).num_classes
    assert len(set(names)) == count
    assert {index: names[index] for index in known} == known
    colors = palette(count)
    assert colors.shape == (count, 3) and len({tuple(c) for c in colors}) == count  # one colour per class


def test_coco_stuff_uses_171_of_the_182_raw_ids() -> None:
    assert sorted(COCO_RAW_NAMES) == list(range(1, 183))
    assert len(COCO_STUFF_UNUSED_IDS) == 11 and len(COCO_STUFF_USED_IDS) == 171
    assert [COCO_RAW_NAMES[i] for i in (12, 26, 91)] == ["street sign", "hat", "hair brush"]
    assert not set(COCO_STUFF_UNUSED_IDS) & set(COCO_STUFF_USED_IDS)
    assert sum(1 for raw in COCO_STUFF_USED_IDS if raw <= 91) == 80  # COCO's 80 thing classes, then 91 stuff
    assert COCO_STUFF_CLASSES[79] == "toothbrush" and len(ADE20K_CLASSES) == 150
    assert list(PASCAL_CONTEXT_CLASSES) == sorted(PASCAL_CONTEXT_CLASSES)  # the full label list's order


def test_stored_ids_map_to_the_named_class(tmp_path: Path) -> None:
    # COCO-Stuff raw 13 (stop sign) -> train id 11; raw 12 (unused) and 0 -> ignored.
    # PASCAL-Context stored 37 (person) -> 36, 0 (background) -> ignored.
    cases = [
        ("coco_stuff", np.array([[13, 12, 0, 182]], np.uint8), [11, 255, 255, 170], "stop sign"),
        ("pascal_context", np.array([[37, 0, 59, 1]], np.uint8), [36, 255, 58, 0], "person"),
    ]
    for layout, raw, expected, first_name in cases:
        root = tmp_path / layout
        for sub, array in (("image/a.jpg", np.zeros((1, 4, 3), np.uint8)), ("label/a.png", raw)):
            (root / "val" / sub).parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(root / "val" / sub), array)
        spec = get_layout(layout)
        dataset = SegDataset(spec.list_pairs(root, "val"), spec, spec.num_classes, where=str(root))
        label = dataset[0]["label"][0].tolist()
        assert label == expected
        assert dataset.class_names[label[0]] == first_name


def test_names_for_a_model_without_recorded_names() -> None:
    assert names_for_classes(150)[0] == "wall"
    assert names_for_classes(19, ["a"] * 19) == ("a",) * 19
    assert names_for_classes(7) == tuple(f"class {i}" for i in range(7))
    assert sorted(layout.num_classes for layout in LAYOUTS.values() if layout.num_classes) == [19, 59, 150, 171]
