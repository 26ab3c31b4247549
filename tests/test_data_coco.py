"""COCO top-down dataset on the real COCO sample and on a generated mini set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hrformer_core.errors import DataError
from hrformer_core.tasks.pose.coco import CocoKeypoints
from hrformer_core.tasks.pose.codecs import heatmap_to_image_coords
from hrformer_core.tasks.pose.keypoints import COCO17
from hrformer_core.tasks.pose.synthetic import generate_synthetic_pose
from hrformer_core.tasks.pose.transforms import TopDownAugment

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLE = SHARED / "data" / "coco-val-sample"
needs_sample = pytest.mark.skipif(
    not (SAMPLE / "test_coco.json").is_file(), reason=f"shared COCO sample not found at {SAMPLE}"
)


def _sample_dataset(**kwargs) -> CocoKeypoints:
    return CocoKeypoints(ann_file=SAMPLE / "test_coco.json", image_dir=SAMPLE, **kwargs)


def _decode_to_image(ds: CocoKeypoints, item: dict, dark: bool) -> np.ndarray:
    coords, _ = ds.codec.decode(item["target"][None], dark=dark)
    meta = item["meta"]
    return heatmap_to_image_coords(coords, meta["center"][None], meta["scale"][None], ds.heatmap_size_hw)[0]


@needs_sample
def test_gt_samples_decode_back_to_the_gt_keypoints():
    ds = _sample_dataset(input_size_hw=(256, 192))
    assert len(ds) == 12  # 14 people, two without labelled keypoints
    assert ds.keypoint_set is COCO17 and ds.heatmap_size_hw == (64, 48)
    exact = _sample_dataset(input_size_hw=(256, 192), unbiased_encoding=True)
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (3, 256, 192) and item["target"].shape == (17, 64, 48)
        gt = item["meta"]["keypoints"]
        labelled = gt[:, 2] > 0
        np.testing.assert_array_equal(item["target_weight"].numpy(), labelled.astype(np.float32))
        # The reference target is quantised to heatmap pixels: at most half a pixel of the crop scale.
        limit = 0.5 * item["meta"]["scale"][0] / 48 + 1e-3
        assert np.abs(_decode_to_image(ds, item, dark=False)[labelled] - gt[labelled, :2]).max() <= limit
        precise = _decode_to_image(exact, exact[i], dark=True)
        assert np.abs(precise[labelled] - gt[labelled, :2]).max() < 1.0


@needs_sample
def test_detection_boxes_and_collated_meta():
    det_file = SAMPLE / "test_coco_det_AP_H_56.json"
    ds = _sample_dataset(det_file=det_file)
    detections = json.loads(det_file.read_text())
    assert len(ds) == len(detections) == 118
    item = ds[0]
    assert item["meta"]["box_score"] == pytest.approx(detections[0]["score"])
    assert item["meta"]["image_id"] == detections[0]["image_id"]
    assert float(item["target_weight"].sum()) == 0.0
    assert item["meta"]["area"] == pytest.approx(float(np.prod(item["meta"]["scale"])), rel=1e-5)
    assert len(_sample_dataset(det_file=det_file, det_threshold=0.5)) == sum(d["score"] >= 0.5 for d in detections)
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 256, 192)
    assert batch["meta"]["center"].shape == (3, 2) and batch["meta"]["flip"].dtype == torch.bool


def test_missing_paths_name_the_expected_layout(tmp_path):
    with pytest.raises(DataError, match=r"dataset folder not found; expected the COCO layout .*val2017"):
        CocoKeypoints(tmp_path / "nowhere", "val")
    with pytest.raises(DataError, match=r"person_keypoints_val2017\.json: annotation file not found"):
        CocoKeypoints(tmp_path, "val")
    ann = tmp_path / "annotations" / "person_keypoints_val2017.json"
    ann.parent.mkdir()
    ann.write_text("{}")
    with pytest.raises(DataError, match=r"val2017: image folder not found"):
        CocoKeypoints(tmp_path, "val")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"images": [', "is not valid JSON"),
        ('{"images": []}', "missing or non-list 'annotations'"),
        (
            json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}),
            "no entry of 'categories' has a 'keypoints' list",
        ),
        (
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
                    "annotations": [{"image_id": 1, "bbox": [0, 0, 5, 5], "keypoints": [1, 2, 2]}],
                    "categories": [COCO17.to_coco_category()],
                }
            ),
            r"annotations\[0\]\.keypoints has 3 values; expected 51",
        ),
        (
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
                    "annotations": [{"image_id": 7, "bbox": [0, 0, 5, 5], "keypoints": [0] * 51}],
                    "categories": [COCO17.to_coco_category()],
                }
            ),
            r"annotations\[0\] refers to image_id 7",
        ),
    ],
)
def test_malformed_annotations_name_file_and_problem(tmp_path, content, message):
    ann = tmp_path / "ann.json"
    ann.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        CocoKeypoints(ann_file=ann, image_dir=tmp_path)
    assert str(ann) in str(info.value)


@needs_sample
def test_unreadable_images_are_skipped_counted_and_limited(tmp_path):
    for path in SAMPLE.iterdir():
        shutil.copy(path, tmp_path / path.name)
    broken = tmp_path / "000000040083.jpg"
    broken.write_bytes(b"not a jpeg")
    ds = CocoKeypoints(ann_file=tmp_path / "test_coco.json", image_dir=tmp_path)
    bad_index = next(i for i in range(len(ds)) if ds.image_path(i) == broken)
    item = ds[bad_index]
    assert item["meta"]["index"] != bad_index and ds.image_path(item["meta"]["index"]) != broken
    assert set(ds.bad_images) == {str(broken)}
    again = CocoKeypoints(ann_file=tmp_path / "test_coco.json", image_dir=tmp_path)
    assert again[bad_index]["meta"]["index"] == item["meta"]["index"]  # deterministic replacement
    fresh = CocoKeypoints(ann_file=tmp_path / "test_coco.json", image_dir=tmp_path)
    meta = {
        "requested_index": torch.tensor([bad_index]),
        "index": torch.tensor([item["meta"]["index"]]),
        "readable": torch.tensor([True]),
    }
    fresh.record_skipped({"meta": meta})
    assert set(fresh.bad_images) == {str(broken)}  # what a DataLoader worker saw, reported in the main process
    (tmp_path / "000000196141.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"2 of 4 images under .* cannot be read .*at most 1"):
        for i in range(len(ds)):
            ds[i]


def test_standard_layout_augmentation_is_seeded_per_epoch_and_index(tmp_path):
    paths = generate_synthetic_pose(tmp_path, num_train=4, num_val=2, seed=0, image_size=(128, 128))
    ds = CocoKeypoints(paths["root"], "train", input_size_hw=(64, 48), augment=TopDownAugment(), seed=3)
    assert ds.heatmap_size_hw == (16, 12) and len(ds) > 0
    first = ds[0]
    assert torch.equal(first["image"], ds[0]["image"])
    ds.set_epoch(1)
    assert not torch.equal(first["image"], ds[0]["image"])
    ds.set_epoch(0)
    assert torch.equal(first["target"], ds[0]["target"])
    other_seed = CocoKeypoints(paths["root"], "train", input_size_hw=(64, 48), augment=TopDownAugment(), seed=4)
    assert not torch.equal(first["image"], other_seed[0]["image"])
    val = CocoKeypoints(paths["root"], "val", det_file=paths["val_detections"], input_size_hw=(64, 48))
    assert len(val) == len(json.loads(paths["val_detections"].read_text()))


def test_worker_init_fn_makes_workers_single_threaded():
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        CocoKeypoints.worker_init_fn(0)
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
