"""The synthetic people set: determinism, valid COCO files, facing-based left/right, caching, lone figures."""

from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from hrformer_core.tasks.pose import synthetic
from hrformer_core.tasks.pose.synthetic import ensure_synthetic_pose, generate_synthetic_pose


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return generate_synthetic_pose(tmp_path_factory.mktemp("synth"), num_train=4, num_val=8, seed=0)


def _files(paths):
    root = paths["root"]
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files(mini, tmp_path):
    same = generate_synthetic_pose(tmp_path / "again", num_train=4, num_val=8, seed=0)
    first, second = _files(mini), _files(same)
    assert len(first) == 4 + 8 + 3 and first == second
    other = _files(generate_synthetic_pose(tmp_path / "other", num_train=4, num_val=8, seed=1))
    assert other.keys() == first.keys()
    assert all(other[k] != first[k] for k in first if k.suffix == ".jpg")


def test_layout_and_annotations_are_valid_coco(mini):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(mini["train_ann"]))
    assert coco.loadCats(1)[0]["keypoints"][5] == "left_shoulder"
    anns = json.loads(mini["val_ann"].read_text())["annotations"] + list(coco.anns.values())
    assert len(anns) >= 12 and len({a["id"] for a in anns}) == len(anns)
    ratios = []
    for ann in anns:
        kps = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
        assert set(np.unique(kps[:, 2])) <= {0, 1, 2}
        assert ann["num_keypoints"] == int((kps[:, 2] > 0).sum())
        labelled = kps[:, 2] > 0
        assert np.all(kps[labelled, :2] >= 0) and np.all(kps[labelled, :2] <= 255)
        assert np.all(kps[~labelled, :2] == 0)
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 256 and y + h <= 256
        assert 0 < ann["area"] <= w * h and ann["iscrowd"] == 0 and ann["category_id"] == 1
        ratios.append(ann["area"] / (w * h))
    assert 0.35 < np.mean(ratios) < 0.65  # real COCO people fill about half of their box
    image = cv2.imread(str(mini["train_images"] / coco.loadImgs(1)[0]["file_name"]))
    assert image.shape == (256, 256, 3)


def test_detection_results_format(mini):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(mini["val_ann"]))
        results = gt.loadRes(str(mini["val_detections"]))
    dets = list(results.anns.values())
    assert len(dets) >= len(gt.anns) // 2
    image_ids = set(gt.getImgIds())
    for det in dets:
        assert det["image_id"] in image_ids and det["category_id"] == 1
        x, y, w, h = det["bbox"]
        assert w > 1 and h > 1 and x >= 0 and y >= 0 and x + w <= 256 and y + h <= 256
        assert 0 < det["score"] <= 1
    assert min(d["score"] for d in dets) < 0.35 < max(d["score"] for d in dets)


def _figures(count):
    views = []
    for i in range(count):
        fig, look = synthetic.sample_figure(np.random.default_rng([9, i]))
        view = "side" if fig.far_side else ("front" if fig.labelled[0] and fig.labelled[1] else "back")
        views.append((view, fig, look))
    return views


def test_left_and_right_follow_the_facing_direction():
    figures = _figures(300)
    counts = {v: sum(1 for view, _, _ in figures if view == v) for v in ("front", "back", "side")}
    assert min(counts.values()) > 30
    for view, expected in (("front", 1), ("back", -1)):
        shoulders = [np.sign(f.keypoints[5, 0] - f.keypoints[6, 0]) for v, f, _ in figures if v == view]
        assert np.mean(np.array(shoulders) == expected) > 0.9  # facing the camera: its left is on the image right
    for view, fig, _ in figures:
        if view == "back":
            assert not fig.labelled[[0, 1, 2]].any() and fig.labelled[[3, 4]].all()
        if view == "side":
            assert fig.labelled.sum() == 15  # far eye and far ear unlabelled


def _paint(fig, look):
    scene = synthetic.Scene.over(np.zeros((256, 256, 3), np.uint8))
    moved = fig.transform(200.0, np.array([128.0, 50.0]))
    scene.add_figure(moved, look, np.random.default_rng(0), 0)
    return set(np.unique(scene.part).tolist()), scene.visibility(moved, 0)


def test_only_figures_facing_the_camera_show_a_face():
    for view, fig, look in _figures(40):
        parts, flags = _paint(fig, look)
        face = {synthetic.EYE, synthetic.NOSE, synthetic.MOUTH} & parts
        if view == "back":
            assert not face and synthetic.HAIR in parts and not flags[[0, 1, 2]].any()
        else:
            assert face and flags[0] > 0
        if view == "front":
            assert synthetic.COLLAR in parts


def test_clothing_colours_do_not_encode_sides():
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(300):
        look = synthetic.sample_look(rng, "front")
        colors, _ = synthetic.person_palette(rng, look)
        diffs.append(colors[synthetic.UPPER_ARM_L].mean() - colors[synthetic.UPPER_ARM_R].mean())
        diffs.append(colors[synthetic.THIGH_L].mean() - colors[synthetic.THIGH_R].mean())
    assert abs(np.mean(diffs)) < 2.0  # only unbiased per-part jitter differs between the sides


def test_ensure_reuses_the_cache_and_regenerates_on_new_parameters(tmp_path):
    paths = ensure_synthetic_pose(tmp_path, num_train=3, num_val=2, seed=0, image_size=(96, 96))
    marker = tmp_path / synthetic.MARKER_NAME
    assert json.loads(marker.read_text())["num_train"] == 3
    image = paths["train_images"] / "000000000001.jpg"
    original = image.read_bytes()
    image.write_bytes(b"edited")
    ensure_synthetic_pose(tmp_path, num_train=3, num_val=2, seed=0, image_size=(96, 96))
    assert image.read_bytes() == b"edited"  # same parameters: the cache is reused as is
    marker.unlink()  # an interrupted generation leaves no marker
    ensure_synthetic_pose(tmp_path, num_train=3, num_val=2, seed=0, image_size=(96, 96))
    assert image.read_bytes() == original
    ensure_synthetic_pose(tmp_path, num_train=2, num_val=2, seed=0, image_size=(96, 96))
    assert sorted(p.name for p in paths["train_images"].iterdir()) == ["000000000001.jpg", "000000000002.jpg"]
    assert len(json.loads(paths["train_ann"].read_text())["images"]) == 2
    assert json.loads(marker.read_text())["num_train"] == 2


def test_a_lone_figure_paints_into_any_image_and_reports_its_mask():
    image = np.zeros((120, 200, 3), np.uint8)  # black: every painted pixel has a non-zero colour
    fig, look = synthetic.sample_figure(np.random.default_rng(3))
    moved = fig.transform(100.0, np.array([60.0, 25.0]))
    painted = synthetic.paint_figure(image, moved, look, np.random.default_rng(4))
    changed = image.any(axis=2)
    assert painted is not None and painted.mask.shape == (120, 200)
    assert np.array_equal(changed, painted.mask) and painted.area == int(changed.sum())
    ys, xs = np.nonzero(changed)
    assert painted.box == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert set(np.unique(painted.parts[changed]).tolist()) <= set(range(1, synthetic.NUM_PARTS))
    x, y, w, h = painted.box
    inside = moved.keypoints[moved.labelled]
    assert np.all((inside >= (x - 1, y - 1)) & (inside <= (x + w, y + h)))  # the keypoints lie within the figure
    outside = fig.transform(100.0, np.array([500.0, 25.0]))
    assert synthetic.paint_figure(image, outside, look, np.random.default_rng(4)) is None
