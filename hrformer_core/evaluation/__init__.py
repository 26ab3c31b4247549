"""Metrics: COCO keypoint AP with the reference test-time protocol, segmentation mIoU, top-k accuracy."""

from hrformer_core.evaluation.classification import TopKAccuracy
from hrformer_core.evaluation.coco_keypoints import (
    METRIC_NAMES,
    PersonPrediction,
    evaluate_coco_keypoints,
    oks_iou,
    oks_nms,
    postprocess_coco,
    rescore,
    to_coco_results,
)
from hrformer_core.evaluation.segmentation import ConfusionMatrix

__all__ = [
    "METRIC_NAMES",
    "ConfusionMatrix",
    "PersonPrediction",
    "TopKAccuracy",
    "evaluate_coco_keypoints",
    "oks_iou",
    "oks_nms",
    "postprocess_coco",
    "rescore",
    "to_coco_results",
]
