"""Top-down pose estimation as an engine plug-in: COCO-style data, heatmap head, weighted MSE, COCO AP.

Importing this module registers the task as "pose".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.coco import CocoKeypoints
from ..data.codecs import HeatmapCodec, flip_back, heatmap_to_image_coords
from ..data.keypoints import COCO17, KeypointSet, get_keypoint_set
from ..data.synthetic import ensure_synthetic_pose
from ..data.transforms import TopDownAugment
from ..engine.optim import weight_decay_groups
from ..engine.schema import SAFE, DataSection, EvalSection, ModelSection
from ..engine.task import Task, register_task
from ..errors import UsageError
from ..evaluation.coco_keypoints import evaluate_coco_keypoints, postprocess_coco
from ..models import create_model
from ..models.pretrained import load_pretrained_backbone

CACHE_ENV = "HRFORMER_CACHE"


@dataclass
class SyntheticSection:
    """The built-in procedural people set (generated on first use, then cached)."""

    num_train: int = field(default=2000, metadata={"min": 1})
    num_val: int = field(default=150, metadata={"min": 1})
    seed: int = field(default=0, metadata={"min": 0})
    image_size: tuple[int, int] = (256, 256)


@dataclass
class PoseData(DataSection):
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
    keypoints: str = "coco17"
    input_size: tuple[int, int] = (256, 192)
    sigma: float = field(default=2.0, metadata={"min": 0.1})
    # Sub-pixel Gaussian centres (DARK's encoding); the reference rounds peaks to the nearest heatmap pixel.
    unbiased_encoding: bool = False
    augment: TopDownAugment = field(default_factory=TopDownAugment)
    max_bad_fraction: float = field(default=0.01, metadata={"min": 0.0, "max": 1.0, **SAFE})


@dataclass
class PoseModel(ModelSection):
    name: str = "hrformer-t"
    drop_path_rate: float | None = field(default=None, metadata={"min": 0.0, "max": 1.0})
    rel_pos_bias: bool = True
    pretrained: str = ""  # ImageNet weights for the backbone: ours (.safetensors) or an official .pth
    loss_weight: float = field(default=1.0, metadata={"min": 0.0})
    # Recompute the transformer branches in the backward pass: less activation memory, ~30 % more compute.
    grad_checkpointing: bool = False
    # Extra weight on pixels near keypoints (per-pixel weight 1 + w * target); 0 is the reference MSE.
    # Short runs escape the all-background phase sooner with it.
    foreground_weight: float = field(default=0.0, metadata={"min": 0.0})


@dataclass
class PoseEval(EvalSection):
    batch_size: int = field(default=32, metadata={"min": 1})
    flip_test: bool = True
    shift_heatmap: bool = True
    dark: bool = False
    oks_nms_threshold: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    keypoint_score_threshold: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "hrformer"))


@lru_cache(maxsize=8)
def _synthetic_root(cache: Path, num_train: int, num_val: int, seed: int, image_size: tuple[int, int]) -> Path:
    """Generated once per process (train and val datasets share it), then reused from the cache folder."""
    root = cache / f"synth-pose-{num_train}-{num_val}-s{seed}-{image_size[0]}x{image_size[1]}"
    return ensure_synthetic_pose(root, num_train, num_val, seed, image_size)["root"]


def resolve_root(data: PoseData) -> Path | None:
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


class PoseTask(Task):
    name = "pose"
    primary_metric = "AP"
    data_schema = PoseData
    model_schema = PoseModel
    eval_schema = PoseEval

    def build_model(self, recipe: Any) -> nn.Module:
        options: dict[str, Any] = {
            "num_keypoints": keypoint_set(recipe.data).num_keypoints,
            "rel_pos_bias": recipe.model.rel_pos_bias,
            # Kept with the weights so predict and export use the training input size.
            "extra": {"input_size": list(recipe.data.input_size)},
        }
        if recipe.model.drop_path_rate is not None:
            options["drop_path_rate"] = recipe.model.drop_path_rate
        model = create_model(recipe.model.name, task="pose", **options)
        if recipe.model.pretrained:
            load_pretrained_backbone(model, recipe.model.pretrained)
        model.backbone.set_grad_checkpointing(recipe.model.grad_checkpointing)
        return model

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
        )

    def build_train_dataset(self, recipe: Any) -> CocoKeypoints:
        self._train_dataset = self._dataset(recipe, train=True)
        return self._train_dataset

    def build_val_dataset(self, recipe: Any) -> CocoKeypoints:
        return self._dataset(recipe, train=False)

    def configure(self, recipe: Any) -> None:
        self._loss_weight = recipe.model.loss_weight
        self._foreground_weight = recipe.model.foreground_weight
        self._eval: PoseEval = recipe.eval
        self._keypoints = keypoint_set(recipe.data)
        self._train_dataset: CocoKeypoints | None = None

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        if self._train_dataset is not None:  # images that DataLoader workers had to skip
            self._train_dataset.record_skipped(batch["meta"])
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
        heatmaps = model(images).float()
        if self._eval.flip_test:
            flipped = model(images.flip(-1)).float()
            heatmaps = (heatmaps + flip_back(flipped, self._keypoints.flip_pairs, self._eval.shift_heatmap)) * 0.5
        meta = batch["meta"]
        size_hw = tuple(heatmaps.shape[-2:])
        codec = HeatmapCodec(tuple(images.shape[-2:]), size_hw)
        coords, scores = codec.decode(heatmaps.cpu(), dark=self._eval.dark)
        center = meta["center"].cpu().numpy()
        scale = meta["scale"].cpu().numpy()
        points = heatmap_to_image_coords(coords, center, scale, size_hw)
        out = []
        for i in range(len(points)):
            out.append(
                {
                    "image_id": int(meta["image_id"][i]),
                    "keypoints": np.concatenate([points[i], scores[i][:, None]], axis=1).astype(np.float64),
                    "center": center[i],
                    "scale": scale[i],
                    "area": float(scale[i][0] * scale[i][1]),
                    "box_score": float(meta["box_score"][i]),
                    "box": np.array(
                        [
                            center[i][0] - scale[i][0] / 2,
                            center[i][1] - scale[i][1] / 2,
                            scale[i][0],
                            scale[i][1],
                        ]
                    ),
                }
            )
        return out

    def compute_metrics(self, predictions: Sequence[dict[str, Any]], dataset: Any, out_dir: Path) -> dict[str, float]:
        sigmas = dataset.keypoint_set.sigmas
        results = postprocess_coco(
            list(predictions),
            sigmas,
            nms_threshold=self._eval.oks_nms_threshold,
            keypoint_score_threshold=self._eval.keypoint_score_threshold,
            category_id=dataset.category_id,
        )
        return evaluate_coco_keypoints(dataset.ann_file, results, sigmas, out_dir=out_dir)

    def param_groups(self, model: nn.Module, recipe: Any) -> list[dict[str, Any]]:
        # The reference's only exemption: no weight decay on the relative-position tables.
        return weight_decay_groups(
            model, recipe.train.optimizer.weight_decay, lambda name, _: "relative_position_bias_table" in name
        )


register_task("pose", PoseTask)
