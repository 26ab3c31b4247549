"""COCO keypoint evaluation with the HRFormer/mmpose test-time protocol.

The protocol (docs: shared/reference/protocols-and-user-asks.md §1.4) is: rescore every person as
box score × mean confident keypoint score, suppress duplicates per image with greedy OKS-NMS (threshold
0.9, OKS area = padded box area), then compute AP/AR with pycocotools' `COCOeval(..., "keypoints")`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrformer_core.errors import DataError, UsageError
from hrformer_core.utils.io import write_json

METRIC_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


@dataclass(frozen=True, eq=False)
class PersonPrediction:
    """One top-down person: decoded keypoints in image pixels plus the box they were predicted in.

    `area` is what OKS-NMS uses: the padded box area (scale w × h in pixels), as the reference code.
    `score` is empty until `rescore` fills it in; `bbox_id` identifies the box across gathered ranks.
    """

    image_id: int
    keypoints: np.ndarray
    box: np.ndarray
    box_score: float
    area: float
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    bbox_id: int | None = None
    score: float | None = None

    @classmethod
    def from_mapping(cls, item: Mapping[str, Any]) -> PersonPrediction:
        """Build from a plain dict; `area` falls back to prod(scale) when only the padded scale is given."""
        missing = [k for k in ("image_id", "keypoints", "box_score") if k not in item]
        if "box" not in item and "bbox" not in item:
            missing.append("box")
        if "area" not in item and "scale" not in item:
            missing.append("area (or scale)")
        if missing:
            raise UsageError(f"prediction is missing key(s) {', '.join(missing)}; got keys {sorted(item)}")
        scale = None if item.get("scale") is None else np.asarray(item["scale"], dtype=np.float64)
        area = float(item["area"]) if "area" in item else float(np.prod(scale))
        keypoints = np.asarray(item["keypoints"], dtype=np.float64)
        if keypoints.ndim == 1 and keypoints.size % 3 == 0:
            keypoints = keypoints.reshape(-1, 3)
        if keypoints.ndim != 2 or keypoints.shape[1] != 3:
            raise UsageError(f"prediction keypoints must be (K, 3) as x, y, score, got {keypoints.shape}")
        center = item.get("center")
        return cls(
            image_id=int(item["image_id"]),
            keypoints=keypoints,
            box=np.asarray(item.get("box", item.get("bbox")), dtype=np.float64).reshape(4),
            box_score=float(item["box_score"]),
            area=area,
            center=None if center is None else np.asarray(center, dtype=np.float64),
            scale=scale,
            bbox_id=None if item.get("bbox_id") is None else int(item["bbox_id"]),
            score=None if item.get("score") is None else float(item["score"]),
        )


Prediction = PersonPrediction | Mapping[str, Any]


def _as_predictions(predictions: Iterable[Prediction]) -> list[PersonPrediction]:
    return [p if isinstance(p, PersonPrediction) else PersonPrediction.from_mapping(p) for p in predictions]


def _as_sigmas(sigmas: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if array.size == 0 or not np.all(array > 0):
        raise UsageError(f"OKS sigmas must be a non-empty list of positive numbers, got {list(array)}")
    return array


def oks_iou(
    kpts_a: np.ndarray,
    kpts_b: np.ndarray,
    area_a: float,
    areas_b: np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
    vis_thr: float | None = None,
) -> np.ndarray:
    """OKS between one person (K,3) and M others (M,K,3), as mmpose's NMS computes it.

    The scale is the mean of the two areas; with `vis_thr`, only keypoints whose scores exceed it in both
    people count, and a pair with none gets OKS 0.
    """
    sigmas = _as_sigmas(sigmas)
    a = np.asarray(kpts_a, dtype=np.float64).reshape(-1, 3)
    b = np.asarray(kpts_b, dtype=np.float64).reshape(-1, a.shape[0], 3)
    if a.shape[0] != sigmas.size:
        raise UsageError(f"keypoints have {a.shape[0]} joints but {sigmas.size} OKS sigmas were given")
    areas_b = np.asarray(areas_b, dtype=np.float64).reshape(-1)
    sq_dist = ((b[:, :, :2] - a[None, :, :2]) ** 2).sum(axis=2)
    scale = (area_a + areas_b)[:, None] / 2 + np.spacing(1)
    similarity = np.exp(-sq_dist / ((2 * sigmas) ** 2)[None, :] / scale / 2)
    if vis_thr is None:
        return similarity.mean(axis=1)
    counted = (a[None, :, 2] > vis_thr) & (b[:, :, 2] > vis_thr)
    n_counted = counted.sum(axis=1)
    total = np.where(counted, similarity, 0.0).sum(axis=1)
    return np.divide(total, n_counted, out=np.zeros_like(total), where=n_counted > 0)


def oks_nms(
    instances: Sequence[Prediction],
    threshold: float = 0.9,
    *,
    sigmas: Sequence[float] | np.ndarray,
    vis_thr: float | None = None,
) -> list[int]:
    """Greedy OKS-NMS over one image's people; returns the kept indices, best score first.

    Ranks by `score` (the rescored value) where set, else by `box_score`; a person is dropped when its
    OKS with an already kept person exceeds `threshold`.
    """
    people = _as_predictions(instances)
    if not people:
        return []
    scores = np.array([p.box_score if p.score is None else p.score for p in people])
    kpts = np.stack([p.keypoints for p in people])
    areas = np.array([p.area for p in people])
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        overlap = oks_iou(kpts[best], kpts[rest], areas[best], areas[rest], sigmas, vis_thr)
        order = rest[overlap <= threshold]
    return keep


def rescore(instances: Iterable[Prediction], keypoint_score_threshold: float = 0.2) -> list[PersonPrediction]:
    """Set score = box score × mean of the keypoint scores above the threshold (0 when none pass)."""
    rescored = []
    for person in _as_predictions(instances):
        kpt_scores = person.keypoints[:, 2]
        confident = kpt_scores[kpt_scores > keypoint_score_threshold]
        kpt_mean = float(confident.mean()) if confident.size else 0.0
        rescored.append(replace(person, score=person.box_score * kpt_mean))
    return rescored


def _unique_by_bbox_id(items: Sequence[Any], key: Any) -> list[Any]:
    """Drop repeats of (image_id, bbox_id), as distributed gathering pads with duplicates; keep the first."""
    seen: set[tuple[int, int]] = set()
    unique = []
    for item in items:
        image_id, bbox_id = key(item)
        if bbox_id is not None:
            if (image_id, bbox_id) in seen:
                continue
            seen.add((image_id, bbox_id))
        unique.append(item)
    return unique


def to_coco_results(predictions: Iterable[Prediction], category_id: int = 1) -> list[dict[str, Any]]:
    """COCO keypoint results: image_id, category_id, flat [x, y, score]*K, score, bbox (xywh), bbox_id."""
    results = []
    for person in _as_predictions(predictions):
        result: dict[str, Any] = {
            "image_id": person.image_id,
            "category_id": int(category_id),
            "keypoints": [float(v) for v in person.keypoints.reshape(-1)],
            "score": float(person.box_score if person.score is None else person.score),
            "bbox": [float(v) for v in person.box],
        }
        if person.bbox_id is not None:
            result["bbox_id"] = person.bbox_id
        results.append(result)
    return results


def postprocess_coco(
    predictions: Iterable[Prediction],
    sigmas: Sequence[float] | np.ndarray,
    nms_threshold: float = 0.9,
    keypoint_score_threshold: float = 0.2,
    category_id: int = 1,
) -> list[dict[str, Any]]:
    """The reference test-time protocol: deduplicate, rescore, OKS-NMS per image, COCO results format."""
    people = _unique_by_bbox_id(_as_predictions(predictions), key=lambda p: (p.image_id, p.bbox_id))
    by_image: dict[int, list[PersonPrediction]] = {}
    for person in rescore(people, keypoint_score_threshold):
        by_image.setdefault(person.image_id, []).append(person)
    kept: list[PersonPrediction] = []
    for image_people in by_image.values():
        kept.extend(image_people[i] for i in oks_nms(image_people, nms_threshold, sigmas=sigmas))
    return to_coco_results(kept, category_id)


def _load_ground_truth(gt: str | os.PathLike | COCO) -> COCO:
    if isinstance(gt, COCO):
        return gt
    path = Path(gt)
    if not path.is_file():
        raise DataError(f"COCO annotation file {path} does not exist")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"COCO annotation file {path} is not valid JSON: {exc}") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"COCO annotation file {path} is not in the COCO layout (bad key {exc})") from exc
    return coco


def _check_inputs(coco: COCO, results: Sequence[Mapping[str, Any]], num_keypoints: int) -> None:
    """Reject what would make pycocotools crash or silently mis-evaluate, naming the offending item."""
    for ann in coco.dataset.get("annotations", []):
        if "num_keypoints" not in ann or len(ann.get("keypoints", [])) != 3 * num_keypoints:
            raise DataError(
                f"ground-truth annotation id {ann.get('id')} needs 'num_keypoints' and {3 * num_keypoints} "
                f"keypoint values ({num_keypoints} sigmas given)"
            )
    image_ids = set(coco.getImgIds())
    for i, result in enumerate(results):
        missing = [k for k in ("image_id", "category_id", "keypoints", "score") if k not in result]
        if missing:
            raise DataError(f"result {i} is missing key(s) {', '.join(missing)}")
        if len(result["keypoints"]) != 3 * num_keypoints:
            raise DataError(
                f"result {i} has {len(result['keypoints'])} keypoint values, expected {3 * num_keypoints} "
                f"({num_keypoints} keypoints × 3)"
            )
        if result["image_id"] not in image_ids:
            raise DataError(f"result {i} has image_id {result['image_id']}, which is not in the ground truth")


def _run_cocoeval(coco: COCO, results: Sequence[Mapping[str, Any]], sigmas: np.ndarray) -> list[float]:
    # Only the keys the reference writes: a 'bbox' would make loadRes take the box branch and set each
    # detection's area (used by APm/APl) to the box area instead of the keypoint extent.
    detections = [
        {k: copy.deepcopy(r[k]) for k in ("image_id", "category_id", "keypoints", "score")} for r in results
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco.loadRes(detections)
        evaluator = COCOeval(coco, coco_dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = sigmas
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def evaluate_coco_keypoints(
    gt: str | os.PathLike | COCO,
    results: Sequence[Mapping[str, Any]],
    sigmas: Sequence[float] | np.ndarray,
    out_dir: str | os.PathLike | None = None,
) -> dict[str, float]:
    """AP/AR (fractions in [0, 1]; -1 where the ground truth has no person of that size) via COCOeval.

    Results with a repeated (image_id, bbox_id) are dropped first. An empty result list scores all zeros.
    With `out_dir`, writes `eval.json` (the metrics) and `predictions.json` (the deduplicated results).
    """
    sigmas = _as_sigmas(sigmas)
    coco = _load_ground_truth(gt)
    unique = _unique_by_bbox_id(list(results), key=lambda r: (r.get("image_id"), r.get("bbox_id")))
    _check_inputs(coco, unique, sigmas.size)
    stats = _run_cocoeval(coco, unique, sigmas) if unique else [0.0] * len(METRIC_NAMES)
    metrics = dict(zip(METRIC_NAMES, stats, strict=True))
    if out_dir is not None:
        write_json(Path(out_dir) / "eval.json", metrics)
        write_json(Path(out_dir) / "predictions.json", unique)
    return metrics
