"""COCO keypoint evaluation: AP on real COCO annotations, OKS-NMS, rescoring, custom keypoint sets."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrformer_core.errors import DataError, UsageError
from hrformer_core.evaluation import (
    METRIC_NAMES,
    PersonPrediction,
    evaluate_coco_keypoints,
    oks_iou,
    oks_nms,
    postprocess_coco,
    rescore,
    to_coco_results,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLE_GT = SHARED / "data" / "coco-val-sample" / "test_coco.json"
COCO_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
) / 10

needs_sample = pytest.mark.skipif(
    not SAMPLE_GT.is_file(), reason=f"shared COCO sample not found at {SAMPLE_GT} (the /work/shared checkout)"
)


def gt_predictions(gt_file: Path, noise: float = 0.0, seed: int = 0) -> list[dict]:
    """Ground-truth people as predictions (keypoint score 1), optionally jittered by noise × sqrt(area)."""
    rng = np.random.default_rng(seed)
    predictions = []
    for i, ann in enumerate(json.loads(gt_file.read_text())["annotations"]):
        if ann["num_keypoints"] == 0:
            continue
        keypoints = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        keypoints[:, :2] += rng.normal(size=(len(keypoints), 2)) * noise * math.sqrt(ann["area"])
        keypoints[:, 2] = 1.0
        x, y, w, h = ann["bbox"]
        predictions.append(
            {"image_id": ann["image_id"], "keypoints": keypoints, "box": ann["bbox"], "box_score": 1.0,
             "area": w * h, "bbox_id": i}
        )
    return predictions


@needs_sample
def test_ground_truth_as_predictions_scores_perfectly(tmp_path: Path) -> None:
    results = to_coco_results(rescore(gt_predictions(SAMPLE_GT)))
    metrics = evaluate_coco_keypoints(SAMPLE_GT, results, COCO_SIGMAS, out_dir=tmp_path / "eval")
    assert list(metrics) == list(METRIC_NAMES)
    assert metrics == {name: pytest.approx(1.0) for name in METRIC_NAMES}
    assert json.loads((tmp_path / "eval" / "eval.json").read_text()) == metrics
    written = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    assert len(written) == 12
    assert set(written[0]) == {"image_id", "category_id", "keypoints", "score", "bbox", "bbox_id"}
    assert len(written[0]["keypoints"]) == 51


@needs_sample
def test_jittered_ground_truth_scores_decrease_with_noise() -> None:
    aps = []
    for noise in (0.02, 0.05, 0.1):
        results = to_coco_results(gt_predictions(SAMPLE_GT, noise))
        aps.append(evaluate_coco_keypoints(SAMPLE_GT, results, COCO_SIGMAS)["AP"])
    assert all(0.0 < ap < 1.0 for ap in aps), aps
    assert aps[0] > aps[1] > aps[2], aps


@needs_sample
def test_random_keypoints_score_near_zero() -> None:
    rng = np.random.default_rng(1)
    coco = COCO()
    coco.dataset = json.loads(SAMPLE_GT.read_text())
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    results = []
    for image in coco.dataset["images"]:
        for _ in range(5):
            xy = rng.uniform(0, 1, size=(17, 2)) * [image["width"], image["height"]]
            keypoints = np.concatenate([xy, np.ones((17, 1))], axis=1).ravel().tolist()
            results.append({"image_id": image["id"], "category_id": 1, "keypoints": keypoints,
                            "score": float(rng.uniform())})
    metrics = evaluate_coco_keypoints(coco, results, COCO_SIGMAS)
    assert 0.0 <= metrics["AP"] < 0.02


@needs_sample
def test_duplicate_bbox_ids_are_evaluated_once(tmp_path: Path) -> None:
    results = to_coco_results(gt_predictions(SAMPLE_GT, noise=0.05))
    reference = evaluate_coco_keypoints(SAMPLE_GT, results, COCO_SIGMAS)
    shifted = [dict(r, keypoints=[v + 3.0 for v in r["keypoints"]]) for r in results[:4]]
    metrics = evaluate_coco_keypoints(SAMPLE_GT, results + shifted, COCO_SIGMAS, out_dir=tmp_path)
    assert metrics == reference
    assert json.loads((tmp_path / "predictions.json").read_text()) == results


def test_empty_predictions_give_zeros(tmp_path: Path) -> None:
    gt_file = write_five_keypoint_gt(tmp_path)
    metrics = evaluate_coco_keypoints(gt_file, [], FIVE_SIGMAS, out_dir=tmp_path / "out")
    assert metrics == dict.fromkeys(METRIC_NAMES, 0.0)
    assert json.loads((tmp_path / "out" / "predictions.json").read_text()) == []


def test_oks_iou_matches_pycocotools_for_equal_areas() -> None:
    rng = np.random.default_rng(2)
    gt = np.concatenate([rng.uniform(50, 150, (17, 2)), np.full((17, 1), 2.0)], axis=1)
    dts = gt[None].repeat(3, axis=0)
    dts[:, :, :2] += rng.normal(0, [[[1.0]], [[4.0]], [[10.0]]], size=(3, 17, 2))
    area = 5000.0
    coco_gt = COCO()
    coco_gt.dataset = {
        "images": [{"id": 1, "width": 200, "height": 200}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": gt.ravel().tolist(),
                         "num_keypoints": 17, "area": area, "bbox": [50, 50, 100, 100], "iscrowd": 0}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([{"image_id": 1, "category_id": 1, "keypoints": d.ravel().tolist(),
                                    "score": 1.0 - 0.1 * i} for i, d in enumerate(dts)])
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = COCO_SIGMAS
        evaluator.evaluate()
    expected = np.asarray(evaluator.ious[(1, 1)]).ravel()
    got = oks_iou(gt, dts, area, np.full(3, area), COCO_SIGMAS)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert got[0] > got[1] > got[2]


def test_oks_iou_uses_mean_area_and_visibility_threshold() -> None:
    sigmas = [0.1, 0.2]
    a = np.array([[0.0, 0.0, 0.9], [10.0, 0.0, 0.9]])
    b = np.array([[[3.0, 4.0, 0.9], [10.0, 0.0, 0.1]]])
    scale = (100.0 + 300.0) / 2
    first = math.exp(-25.0 / (0.2**2) / scale / 2)
    assert oks_iou(a, b, 100.0, [300.0], sigmas)[0] == pytest.approx((first + 1.0) / 2)
    assert oks_iou(a, b, 100.0, [300.0], sigmas, vis_thr=0.5)[0] == pytest.approx(first)
    assert oks_iou(a, b, 100.0, [300.0], sigmas, vis_thr=0.95)[0] == 0.0


def person(x: float, y: float, score: float, image_id: int = 1, **extra) -> PersonPrediction:
    keypoints = np.array([[x + dx, y + dy, 0.9] for dx, dy in [(0, 0), (10, 5), (-10, 5), (8, 40), (-8, 40)]])
    return PersonPrediction(image_id=image_id, keypoints=keypoints, box=np.array([x - 20, y - 10, 40, 70]),
                            box_score=score, area=40 * 70 * 1.25**2, **extra)


def test_oks_nms_removes_duplicate_and_keeps_distinct_people() -> None:
    sigmas = [0.05] * 5
    people = [person(100, 100, 0.7), person(101, 100.5, 0.95), person(300, 120, 0.5), person(100, 100, 0.2)]
    assert oks_nms(people, 0.9, sigmas=sigmas) == [1, 2]
    assert oks_nms(people, 1.0, sigmas=sigmas) == [1, 0, 2, 3]
    assert oks_nms([], sigmas=sigmas) == []


def test_rescore_multiplies_box_score_by_mean_confident_keypoint_score() -> None:
    base = {"image_id": 7, "box": [0, 0, 10, 20], "box_score": 0.8, "area": 200.0}
    confident = dict(base, keypoints=[[1, 1, 0.9], [2, 2, 0.1], [3, 3, 0.5], [4, 4, 0.2]])
    hopeless = dict(base, keypoints=[[1, 1, 0.2], [2, 2, 0.05]])
    scored = rescore([confident, hopeless])
    assert scored[0].score == pytest.approx(0.8 * (0.9 + 0.5) / 2)
    assert scored[1].score == 0.0
    assert rescore([confident], keypoint_score_threshold=0.0)[0].score == pytest.approx(0.8 * 1.7 / 4)
    assert to_coco_results(scored)[0]["score"] == pytest.approx(0.56)


def test_postprocess_rescores_deduplicates_and_suppresses_per_image() -> None:
    sigmas = [0.05] * 5
    predictions = [
        person(100, 100, 0.9, bbox_id=0),
        person(100, 100, 0.9, bbox_id=0),  # gathered twice by two ranks
        person(101, 100, 0.6, bbox_id=1),  # the same person from a second detector box
        person(101, 100, 0.6, image_id=2, bbox_id=2),  # same place, other image: kept
    ]
    results = postprocess_coco(predictions, sigmas)
    assert [(r["image_id"], r["bbox_id"]) for r in results] == [(1, 0), (2, 2)]
    assert [r["score"] for r in results] == pytest.approx([0.9 * 0.9, 0.6 * 0.9])


def test_prediction_area_falls_back_to_padded_scale() -> None:
    item = {"image_id": 1, "keypoints": np.zeros(15), "bbox": [0, 0, 1, 1], "box_score": 1.0,
            "scale": [40, 60]}
    assert PersonPrediction.from_mapping(item).area == 2400.0
    with pytest.raises(UsageError, match="area"):
        PersonPrediction.from_mapping({k: v for k, v in item.items() if k != "scale"})


FIVE_SIGMAS = [0.05, 0.06, 0.07, 0.08, 0.09]


def write_five_keypoint_gt(folder: Path) -> Path:
    """A custom 5-keypoint dataset: two images, three people of large and medium size."""
    people = [(1, 10, 10, 120, 150), (1, 200, 40, 90, 110), (2, 30, 30, 50, 60)]
    layout = [(0.5, 0.1), (0.2, 0.4), (0.8, 0.4), (0.3, 0.9), (0.7, 0.9)]
    annotations = []
    for ann_id, (image_id, x, y, w, h) in enumerate(people, start=1):
        xy = [(x + w * fx, y + h * fy) for fx, fy in layout]
        annotations.append({
            "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": w * h * 0.6,
            "bbox": [x, y, w, h], "num_keypoints": 5, "keypoints": [v for p in xy for v in (*p, 2)],
        })
    gt = {
        "images": [{"id": 1, "width": 320, "height": 240, "file_name": "a.jpg"},
                   {"id": 2, "width": 100, "height": 100, "file_name": "b.jpg"}],
        "categories": [{"id": 1, "name": "thing", "keypoints": ["a", "b", "c", "d", "e"]}],
        "annotations": annotations,
    }
    path = folder / "five.json"
    path.write_text(json.dumps(gt))
    return path


def test_custom_keypoint_count_with_custom_sigmas(tmp_path: Path) -> None:
    gt_file = write_five_keypoint_gt(tmp_path)
    annotations = json.loads(gt_file.read_text())["annotations"]
    perfect = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9}
               for a in annotations]
    assert evaluate_coco_keypoints(gt_file, perfect, FIVE_SIGMAS)["AP"] == pytest.approx(1.0)
    off = [dict(r, keypoints=[v + 6.0 if i % 3 != 2 else v for i, v in enumerate(r["keypoints"])])
           for r in perfect]
    assert 0.0 < evaluate_coco_keypoints(gt_file, off, FIVE_SIGMAS)["AP"] < 1.0
    with pytest.raises(DataError, match="expected 15"):
        evaluate_coco_keypoints(gt_file, [dict(perfect[0], keypoints=[0.0] * 51)], FIVE_SIGMAS)


def test_user_errors_name_the_problem(tmp_path: Path) -> None:
    gt_file = write_five_keypoint_gt(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        evaluate_coco_keypoints(tmp_path / "missing.json", [], FIVE_SIGMAS)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="broken.json"):
        evaluate_coco_keypoints(tmp_path / "broken.json", [], FIVE_SIGMAS)
    stray = {"image_id": 99, "category_id": 1, "keypoints": [0.0] * 15, "score": 1.0}
    with pytest.raises(DataError, match="image_id 99"):
        evaluate_coco_keypoints(gt_file, [stray], FIVE_SIGMAS)
    with pytest.raises(DataError, match="51 keypoint values"):
        evaluate_coco_keypoints(gt_file, [], COCO_SIGMAS)
