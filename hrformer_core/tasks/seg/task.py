"""Semantic segmentation with HRFormer + OCR: the standard datasets, the official losses, confusion-matrix mIoU.

Evaluation is distributed-safe: `predict_batch` returns each image's confusion counts (the non-zero cells of
a num_classes x num_classes matrix), never a label map, and rank 0 adds them up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ...engine.evaluation import TABLES_KEY, table_spec
from ...engine.optim import weight_decay_groups
from ...engine.schema import SAFE, EvalSection
from ...errors import UsageError
from ...evaluation.segmentation import ConfusionMatrix
from ...models.weights import WeightsFile
from ...utils.io import write_json, write_text
from ..base import PredictOptions, cache_dir
from ..common import HRFormerModelSection, HRFormerTask, ImageDataSection
from .datasets import SegDataset, collate
from .inference import image_logits
from .layouts import IGNORE, get_layout
from .losses import cross_entropy, ohem_cross_entropy
from .predictor import SegPredictor
from .synthetic import SYNTH_CLASSES, ensure_synthetic_seg
from .transforms import SegAugment


@dataclass
class SynthSegSection:
    """The built-in procedural street scenes (generated on first use, then cached)."""

    num_train: int = field(default=600, metadata={"min": 1})
    num_val: int = field(default=60, metadata={"min": 1})
    seed: int = field(default=0, metadata={"min": 0})
    image_size: tuple[int, int] = (128, 128)  # (H, W)


@dataclass
class SegData(ImageDataSection):
    """A standard layout under `root` (`layout`: cityscapes, ade20k, coco_stuff, pascal_context, folder).

    `crop_size` is (H, W) of the training crops; `eval_short_side` resizes validation images so the shorter
    side has that length before inference (0 keeps them; metrics are always at the label's resolution).
    `synthetic: true` uses the built-in scenes (root = their cache folder, layout folder).
    """

    layout: str = "folder"
    num_classes: int | None = field(default=None, metadata={"min": 1})  # folder layout; others know theirs
    synthetic: bool = False
    synthetic_set: SynthSegSection = field(default_factory=SynthSegSection)
    train_split: str = "train"
    val_split: str = "val"
    crop_size: tuple[int, int] = (512, 1024)
    augment: SegAugment = field(default_factory=SegAugment)
    eval_short_side: int = field(default=0, metadata={"min": 0, **SAFE})
    max_bad_fraction: float = field(default=0.01, metadata={"min": 0.0, "max": 1.0, **SAFE})


@dataclass
class SegModel(HRFormerModelSection):
    name: str = "hrformer-s"
    ocr_mid_channels: int = field(default=512, metadata={"min": 1})
    ocr_key_channels: int = field(default=256, metadata={"min": 1})
    # ohem: the scripts' fs_auxohemce_loss (OHEM on the OCR output); ce: fs_auxce_loss.
    loss: Literal["ce", "ohem"] = "ohem"
    aux_weight: float = field(default=0.4, metadata={"min": 0.0})
    ohem_thresh: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    ohem_min_kept: int = field(default=100000, metadata={"min": 1})
    class_weights: list[float] = field(default_factory=list)  # per-class CE weights (Cityscapes' ce_weight)


@dataclass
class SegEval(EvalSection):
    batch_size: int = field(default=1, metadata={"min": 1})
    mode: Literal["whole", "slide"] = "whole"
    window: tuple[int, int] | None = None  # slide windows (H, W); default data.crop_size
    scales: list[float] = field(default_factory=lambda: [1.0])
    # eval.ms=true evaluates at ms_scales instead (the reference's MS3x test configs), flip adds mirrored views.
    ms: bool = False
    ms_scales: list[float] = field(default_factory=lambda: [0.75, 1.0, 1.25])
    flip: bool = False


@lru_cache(maxsize=8)
def _synthetic_root(cache: Path, num_train: int, num_val: int, seed: int, image_size: tuple[int, int]) -> Path:
    root = cache / f"synth-seg-{num_train}-{num_val}-s{seed}-{image_size[0]}x{image_size[1]}"
    return ensure_synthetic_seg(root, num_train, num_val, seed, image_size)


def _num_classes(data: SegData) -> int:
    if data.synthetic:
        return len(SYNTH_CLASSES)
    layout = get_layout(data.layout)
    if layout.num_classes is None:
        if data.num_classes is None:
            raise UsageError(
                "data.num_classes: the folder layout needs the number of classes (e.g. data.num_classes=6)"
            )
        return data.num_classes
    if data.num_classes not in (None, layout.num_classes):
        raise UsageError(
            f"data.num_classes={data.num_classes}: the {layout.name} layout has {layout.num_classes} classes"
        )
    return layout.num_classes


def class_names(data: SegData) -> tuple[str, ...]:
    """The recipe's class names: the layout's, the synthetic scenes', or "class i" for a folder of train ids."""
    if data.synthetic:
        return SYNTH_CLASSES
    names = get_layout(data.layout).class_names
    return names or tuple(f"class {i}" for i in range(_num_classes(data)))


def resolve_root(data: SegData) -> Path:
    """The dataset folder the recipe names (the synthetic scenes: their cache, generated on first use)."""
    if data.synthetic and data.root:
        raise UsageError(
            f"data.root={data.root} and data.synthetic=true: add data.synthetic=false to use data.root, "
            "or data.root= (empty) for the built-in scenes"
        )
    if data.synthetic:
        s = data.synthetic_set
        return _synthetic_root(cache_dir(), s.num_train, s.num_val, s.seed, tuple(s.image_size))
    if not data.root:
        raise UsageError(
            f"data.root: no dataset given; set data.root=/path/to/data (layout {data.layout}: "
            f"{get_layout(data.layout).describe}) or data.synthetic=true for the built-in scenes"
        )
    return Path(data.root)


def _is_conv_or_linear_weight(model: nn.Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear | nn.modules.conv._ConvNd)}


class SegTask(HRFormerTask):
    name = "seg"
    head = "seg"
    description = "semantic segmentation"
    primary_metric = "mIoU"
    data_schema = SegData
    model_schema = SegModel
    eval_schema = SegEval
    hub_pipeline_tag = "image-segmentation"
    quickstart_recipe = "seg-quickstart"
    predict_option_names = frozenset({"seg_mode"})

    def configure(self, recipe: Any) -> None:
        self._model: SegModel = recipe.model
        self._eval: SegEval = recipe.eval
        self._window = tuple(recipe.eval.window or recipe.data.crop_size)
        self._num_classes = _num_classes(recipe.data)
        weights = recipe.model.class_weights
        if weights and len(weights) != self._num_classes:
            raise UsageError(f"model.class_weights: {len(weights)} values for {self._num_classes} classes")
        self._class_weights = torch.tensor(weights, dtype=torch.float32) if weights else None

    def model_options(self, recipe: Any) -> dict[str, Any]:
        options = super().model_options(recipe)
        options["num_classes"] = _num_classes(recipe.data)
        options["ocr_mid_channels"] = recipe.model.ocr_mid_channels
        options["ocr_key_channels"] = recipe.model.ocr_key_channels
        # The class names travel with the weights, so predict can name classes without the recipe.
        options["extra"] = {"input_size": list(recipe.data.crop_size), "class_names": list(class_names(recipe.data))}
        return options

    def _dataset(self, recipe: Any, train: bool) -> SegDataset:
        data: SegData = recipe.data
        layout = get_layout("folder" if data.synthetic else data.layout)
        root = resolve_root(data)
        split = data.train_split if train else data.val_split
        folder = layout.splits.get(split, split)
        return SegDataset(
            layout.list_pairs(root, folder),
            layout,
            _num_classes(data),
            crop_hw=tuple(data.crop_size),
            class_names=class_names(data),
            augment_options=data.augment if train else None,
            eval_short_side=data.eval_short_side,
            seed=recipe.train.seed,
            max_bad_fraction=data.max_bad_fraction,
            where=f"{root} ({layout.name}, {folder})",
        )

    def build_train_dataset(self, recipe: Any) -> SegDataset:
        return self._dataset(recipe, train=True)

    def build_val_dataset(self, recipe: Any) -> SegDataset:
        return self._dataset(recipe, train=False)

    def collate(self, samples: list[Any]) -> Any:
        return collate(samples)

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        aux, logits = model(batch["image"])
        target = batch["label"]
        weight = None if self._class_weights is None else self._class_weights.to(logits.device)
        m = self._model
        if m.loss == "ohem":
            seg = ohem_cross_entropy(logits.float(), target, m.ohem_thresh, m.ohem_min_kept, weight)
        else:
            seg = cross_entropy(logits.float(), target, weight)
        aux_loss = cross_entropy(aux.float(), target, weight)
        return seg + m.aux_weight * aux_loss, {"seg": seg.detach(), "aux": aux_loss.detach()}

    def param_groups(self, model: nn.Module, recipe: Any) -> list[dict[str, Any]]:
        # The scripts' GROUP_METHOD='decay': only conv and linear weights decay; norms, biases and the
        # relative-position tables do not (openseg trainer.group_weight).
        decayed = _is_conv_or_linear_weight(model)
        return weight_decay_groups(model, recipe.train.optimizer.weight_decay, lambda _, p: id(p) not in decayed)

    @torch.no_grad()
    def predict_batch(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        e, n = self._eval, self._num_classes
        scales = e.ms_scales if e.ms else e.scales

        def forward(x: torch.Tensor) -> torch.Tensor:
            return model(x)[1]

        results = []
        for i, (image, label) in enumerate(zip(batch["image"], batch["label"], strict=True)):
            logits = image_logits(
                forward, image, mode=e.mode, window_hw=self._window, scales=scales, flip=e.flip,
                batch_size=e.batch_size, output_hw=tuple(label.shape[-2:]),
            )  # fmt: skip
            results.append({"index": int(batch["index"][i]), **confusion_cells(logits.argmax(0), label.cpu(), n)})
        return results

    def compute_metrics(self, predictions: Sequence[dict[str, Any]], dataset: Any, out_dir: Path) -> dict[str, Any]:
        n = self._num_classes
        matrix = ConfusionMatrix(n, IGNORE)
        for prediction in predictions:
            flat = torch.zeros(n * n, dtype=torch.int64)
            flat[torch.from_numpy(prediction["cells"])] = torch.from_numpy(prediction["counts"])
            matrix.matrix += flat.reshape(n, n)
        scores = matrix.compute()
        rows = [
            {"class": name, "IoU": iou, "accuracy": accuracy}
            for name, iou, accuracy in zip(dataset.class_names, scores["IoU"], scores["accuracy"], strict=True)
        ]
        metrics = {
            "mIoU": scores["mIoU"],
            "pixel_accuracy": scores["pixel_accuracy"],
            "mean_accuracy": scores["mean_accuracy"],
            "images": len(predictions),
            "per_class": rows,  # IoU and accuracy None: the class is in neither labels nor predictions
            TABLES_KEY: [table_spec("per-class IoU", "per_class", ["class", "IoU", "accuracy"], rank_by="IoU")],
        }
        write_json(out_dir / "per_class_iou.json", {"metrics": metrics, "confusion": matrix.matrix.tolist()})
        write_text(out_dir / "per_class_iou.md", per_class_markdown(metrics))
        return metrics

    def predictor(self, model: nn.Module, weights: WeightsFile, options: PredictOptions) -> SegPredictor:
        return SegPredictor(model, weights.config, options.input_size, options)


def confusion_cells(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> dict[str, np.ndarray]:
    """One image's confusion counts as its non-zero cells (flat index truth * n + prediction, count)."""
    keep = label != IGNORE
    flat = label[keep].long() * num_classes + pred[keep].long()
    counts = torch.bincount(flat, minlength=num_classes * num_classes)
    cells = counts.nonzero().flatten()
    return {"cells": cells.numpy(), "counts": counts[cells].numpy()}


def per_class_markdown(metrics: dict[str, Any]) -> str:
    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    lines = ["| class | IoU (%) | accuracy (%) |", "|---|---:|---:|"]
    for row in metrics["per_class"]:
        lines.append(f"| {row['class']} | {percent(row['IoU'])} | {percent(row['accuracy'])} |")
    lines += [
        "",
        f"mIoU {100 * metrics['mIoU']:.2f} %, pixel accuracy {100 * metrics['pixel_accuracy']:.2f} %, "
        f"mean accuracy {100 * metrics['mean_accuracy']:.2f} % ({metrics['images']} images)",
    ]
    return "\n".join(lines) + "\n"


__all__ = ["SegTask"]
