"""Top-down pose estimation: COCO-style data, the heatmap head, weighted MSE, COCO AP, and prediction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...engine.schema import SAFE, EvalSection
from ...errors import UsageError
from ...evaluation.coco_keypoints import evaluate_coco_keypoints, postprocess_coco
from ...models.weights import WeightsFile
from ..base import PredictOptions, cache_dir
from ..common import HRFormerModelSection, HRFormerTask, ImageDataSection
from .coco import CocoKeypoints
from .inference import decode_keypoints, predict_heatmaps
from .keypoints import COCO17, KeypointSet, get_keypoint_set
from .predictor import PosePredictor
from .synthetic import ensure_synthetic_pose
from .transforms import TopDownAugment


@dataclass
class SyntheticSection:
    """The built-in procedural people set (generated on first use, then cached)."""

    num_train: int = field(default=2000, metadata={"min": 1})
    num_val: int = field(default=150, metadata={"min": 1})
    seed: int = field(default=0, metadata={"min": 0})
    image_size: tuple[int, int] = (256, 256)


@dataclass
class PoseData(ImageDataSection):
    """COCO keypoints layout under `root` (annotations/person_keypoints_{split}2017.json, {split}2017/).

    `val_boxes`: a detection-results JSON (COCO results format; relative to root) or `gt` for the
    ground-truth boxes. `synthetic: true` uses the built-in synthetic set (root = its cache folder).
    """

    synthetic: bool = False
    synthetic_set: SyntheticSection = field(default_factory=SyntheticSection)
    train_split: str = "train"
    val_split: str = "val"
    train_ann: str = ""
    val_ann: str = ""
    train_images: str = ""
    val_images: str = ""
    val_boxes: str = field(
        default="person_detection_results/COCO_val2017_detections_AP_H_56_person.json", metadata=SAFE
    )
    det_threshold: float = field(default=0.0, metadata={"min": 0.0, **SAFE})
    # Detector boxes with w or h <= 0 are evaluated as the reference does; false drops them (docs/pose-eval-parity.md).
    keep_empty_boxes: bool = field(default=True, metadata=SAFE)
    # true reads images rotated by their EXIF orientation, as the reference; COCO's labels are for the stored pixels.
    apply_exif_orientation: bool = field(default=False, metadata=SAFE)
    keypoints: str = "coco17"
    input_size: tuple[int, int] = (256, 192)
    sigma: float = field(default=2.0, metadata={"min": 0.1})
    # Sub-pixel Gaussian centres (DARK's encoding); the reference rounds peaks to the nearest heatmap pixel.
    unbiased_encoding: bool = False
    augment: TopDownAugment = field(default_factory=TopDownAugment)
    max_bad_fraction: float = field(default=0.01, metadata={"min": 0.0, "max": 1.0, **SAFE})


@dataclass
class PoseModel(HRFormerModelSection):
    loss_weight: float = field(default=1.0, metadata={"min": 0.0})
    # Extra weight on pixels near keypoints (per-pixel weight 1 + w * target); 0 is the reference MSE.
    # Short runs escape the all-background phase sooner with it.
    foreground_weight: float = field(default=0.0, metadata={"min": 0.0})


@dataclass
class PoseEval(EvalSection):
    flag_keys: ClassVar[dict[str, str]] = {"flip": "flip_test"}
    batch_size: int = field(default=32, metadata={"min": 1})
    flip_test: bool = True
    shift_heatmap: bool = True
    dark: bool = False
    oks_nms_threshold: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    keypoint_score_threshold: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})


@lru_cache(maxsize=8)
def _synthetic_root(cache: Path, num_train: int, num_val: int, seed: int, image_size: tuple[int, int]) -> Path:
    """Generated once per process (train and val datasets share it), then reused from the cache folder."""
    root = cache / f"synth-pose-{num_train}-{num_val}-s{seed}-{image_size[0]}x{image_size[1]}"
    return ensure_synthetic_pose(root, num_train, num_val, seed, image_size)["root"]


def resolve_root(data: PoseData) -> Path | None:
    """The dataset folder: the built-in synthetic set's cache folder, or `data.root` (never both silently)."""
    if data.synthetic and data.root:
        raise UsageError(
            f"data.root={data.root} and data.synthetic=true: the synthetic set would be used and data.root "
            "ignored; add data.synthetic=false to use data.root, or data.root= (empty) for the synthetic set"
        )
    if data.synthetic:
        s = data.synthetic_set
        return _synthetic_root(cache_dir(), s.num_train, s.num_val, s.seed, tuple(s.image_size))
    return Path(data.root) if data.root else None


def keypoint_set(data: PoseData) -> KeypointSet:
    return COCO17 if data.keypoints == "coco17" else get_keypoint_set(data.keypoints)


def _split_paths(root: Path | None, split: str, ann: str, images: str) -> dict[str, Any]:
    if root is None and not ann:
        raise UsageError(
            "data.root: no dataset given; set data.root=/path/to/coco (or the HRFORMER_COCO environment variable "
            "in the recipe), data.synthetic=true for the built-in set, or data.train_ann/data.val_ann"
        )

    def under_root(value: str) -> Path | None:
        if not value:
            return None
        path = Path(value)
        return path if path.is_absolute() or root is None else root / path

    return dict(root=root, split=split, ann_file=under_root(ann), image_dir=under_root(images))


class PoseTask(HRFormerTask):
    name = "pose"
    head = "pose"
    description = "human pose estimation (COCO top-down)"
    primary_metric = "AP"
    data_schema = PoseData
    model_schema = PoseModel
    eval_schema = PoseEval
    hub_pipeline_tag = "keypoint-detection"
    quickstart_recipe = "quickstart"
    predict_option_names = frozenset(
        {"boxes", "boxes_annotations", "detector", "box_threshold", "kpt_threshold", "keypoints"}
    )

    def configure(self, recipe: Any) -> None:
        self._loss_weight = recipe.model.loss_weight
        self._foreground_weight = recipe.model.foreground_weight
        self._eval: PoseEval = recipe.eval
        self._keypoints = keypoint_set(recipe.data)

    def model_options(self, recipe: Any) -> dict[str, Any]:
        options = super().model_options(recipe)
        options["num_keypoints"] = keypoint_set(recipe.data).num_keypoints
        # Kept with the weights so predict and export use the training input size.
        options["extra"] = {"input_size": list(recipe.data.input_size)}
        return options

    def _dataset(self, recipe: Any, train: bool) -> CocoKeypoints:
        data: PoseData = recipe.data
        root = resolve_root(data)
        if train:
            paths = _split_paths(root, data.train_split, data.train_ann, data.train_images)
            boxes: dict[str, Any] = {}
        else:
            paths = _split_paths(root, data.val_split, data.val_ann, data.val_images)
            boxes = {}
            if data.val_boxes != "gt":
                det = Path(data.val_boxes)
                if not det.is_absolute() and root is not None:
                    det = root / det
                boxes = {"det_file": det, "det_threshold": data.det_threshold}
        return CocoKeypoints(
            **paths,
            **boxes,
            input_size_hw=tuple(data.input_size),
            sigma=data.sigma,
            unbiased_encoding=data.unbiased_encoding,
            augment=data.augment if train else None,
            keypoint_set=keypoint_set(data),
            seed=recipe.train.seed,
            max_bad_fraction=data.max_bad_fraction,
            replace_unreadable=train,
            keep_empty_boxes=data.keep_empty_boxes,
            apply_exif_orientation=data.apply_exif_orientation,
        )

    def build_train_dataset(self, recipe: Any) -> CocoKeypoints:
        return self._dataset(recipe, train=True)

    def build_val_dataset(self, recipe: Any) -> CocoKeypoints:
        return self._dataset(recipe, train=False)

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        heatmaps = model(batch["image"]).float()
        weight = batch["target_weight"].float()[:, :, None, None]
        # Reference JointsMSELoss: mean over joints of MSE(pred * w, target * w).
        target = batch["target"]
        squared = ((heatmaps - target) * weight).pow(2)
        mse = squared.mean()
        if self._foreground_weight:
            loss = (squared * (1.0 + self._foreground_weight * target)).mean() * self._loss_weight
        else:
            loss = mse * self._loss_weight
        return loss, {"mse": mse.detach()}

    @torch.no_grad()
    def predict_batch(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        images = batch["image"]
        pairs = self._keypoints.flip_pairs if self._eval.flip_test else None
        heatmaps = predict_heatmaps(model, images, pairs, self._eval.shift_heatmap)
        meta = batch["meta"]
        center = meta["center"].cpu().numpy()
        scale = meta["scale"].cpu().numpy()
        keypoints = decode_keypoints(heatmaps, tuple(images.shape[-2:]), center, scale, dark=self._eval.dark)
        return [
            {
                "image_id": int(meta["image_id"][i]),
                "keypoints": keypoints[i],
                "center": center[i],
                "scale": scale[i],
                "area": float(scale[i][0] * scale[i][1]),
                "box_score": float(meta["box_score"][i]),
                "box": np.array([*(center[i] - scale[i] / 2), *scale[i]]),
            }
            for i in range(len(keypoints))
        ]

    def compute_metrics(self, predictions: Sequence[dict[str, Any]], dataset: Any, out_dir: Path) -> dict[str, Any]:
        sigmas = dataset.keypoint_set.sigmas
        results = postprocess_coco(
            list(predictions),
            sigmas,
            nms_threshold=self._eval.oks_nms_threshold,
            keypoint_score_threshold=self._eval.keypoint_score_threshold,
            category_id=dataset.category_id,
        )
        metrics = evaluate_coco_keypoints(dataset.ann_file, results, sigmas, out_dir=out_dir)
        if getattr(dataset, "det_file", None) is not None:  # how many detector boxes had zero size, and their fate
            kept = dataset.num_empty_boxes if dataset.keep_empty_boxes else 0
            metrics.update(empty_boxes_kept=kept, empty_boxes_dropped=dataset.num_empty_boxes - kept)
        return metrics

    def predictor(self, model: nn.Module, weights: WeightsFile, options: PredictOptions) -> PosePredictor:
        return PosePredictor(model, weights.config, options.input_size, options)
