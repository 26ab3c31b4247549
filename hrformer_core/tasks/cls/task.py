"""Image classification: ImageNet folder data, mixup/CutMix with soft-target cross-entropy, top-1/top-5, and
top-k prediction on user images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate

from ...engine.evaluation import TABLES_KEY, table_spec
from ...engine.optim import weight_decay_groups
from ...engine.schema import SAFE, EvalSection
from ...errors import DataError, UsageError
from ...evaluation.classification import per_class_accuracy, ranked_accuracy
from ...models.weights import WeightsFile
from ..base import PredictOptions
from ..common import HRFormerModelSection, HRFormerTask, ImageDataSection
from .augment import ClsAugment, TestTransform, TrainTransform
from .folder import ImageFolder, RecordedClasses, class_folders, class_names_metadata, names_for_data, recorded_classes
from .mixing import MixSection, mix_batch, smooth_one_hot, soft_target_cross_entropy
from .predictor import ClsPredictor
from .synthetic import CLASSES as SYNTHETIC_CLASSES
from .synthetic import ensure_synthetic_cls

# Parameters the official classification code (`set_weight_decay`) does not decay, besides 1-D ones (norms,
# biases): the relative-position tables.
NO_DECAY_KEYWORDS = ("relative_position_bias_table",)
TOPK = (1, 5)


@dataclass
class SyntheticClsSection:
    """The built-in procedural shapes set (`hrformer data synth-cls`), generated on first use and cached."""

    per_class_train: int = field(default=200, metadata={"min": 1})
    per_class_val: int = field(default=40, metadata={"min": 1})
    seed: int = field(default=0, metadata={"min": 0})
    image_size: int = field(default=64, metadata={"min": 16})


@dataclass
class ClsData(ImageDataSection):
    """The ImageNet folder layout under `root` (train/<class>/*.JPEG, val/<class>/*.JPEG, optional classes.txt);
    `synthetic: true` uses the built-in shapes set instead."""

    synthetic: bool = False
    synthetic_set: SyntheticClsSection = field(default_factory=SyntheticClsSection)
    train_split: str = "train"
    val_split: str = "val"
    input_size: tuple[int, int] = (224, 224)
    augment: ClsAugment = field(default_factory=ClsAugment)
    mix: MixSection = field(default_factory=MixSection)
    max_bad_fraction: float = field(default=0.01, metadata={"min": 0.0, "max": 1.0, **SAFE})


@dataclass
class ClsModel(HRFormerModelSection):
    # None: the number of class folders of the data.
    num_classes: int | None = field(default=None, metadata={"min": 1})


@dataclass
class ClsEval(EvalSection):
    batch_size: int = field(default=64, metadata={"min": 1})


def resolve_root(data: ClsData) -> Path:
    if data.synthetic and data.root:
        raise UsageError(
            f"data.root={data.root} and data.synthetic=true: the synthetic set would be used and data.root "
            "ignored; add data.synthetic=false to use data.root, or data.root= (empty) for the synthetic set"
        )
    if data.synthetic:
        s = data.synthetic_set
        return ensure_synthetic_cls(s.per_class_train, s.per_class_val, s.seed, s.image_size)
    if not data.root:
        raise UsageError(
            "data.root: no dataset given; set data.root=/path/to/imagenet (or the HRFORMER_IMAGENET environment "
            "variable in the recipe), or data.synthetic=true for the built-in set"
        )
    return Path(data.root)


class ClsTask(HRFormerTask):
    name = "cls"
    head = "cls"
    description = "image classification"
    primary_metric = "top1"
    data_schema = ClsData
    model_schema = ClsModel
    eval_schema = ClsEval
    hub_pipeline_tag = "image-classification"
    quickstart_recipe = "cls-quickstart"
    predict_option_names = frozenset({"topk", "class_names"})

    def configure(self, recipe: Any) -> None:
        self._data: ClsData = recipe.data
        self._class_metadata: dict[str, str] = {}  # the training data's classes, saved with the weights
        self._recorded: RecordedClasses | None = None  # the classes the evaluated weights record

    def _num_classes(self, recipe: Any) -> int:
        if recipe.model.num_classes is not None:
            return recipe.model.num_classes
        data: ClsData = recipe.data
        if data.synthetic:
            return len(SYNTHETIC_CLASSES)
        return len(class_folders(resolve_root(data), data.train_split, data.val_split))

    def model_options(self, recipe: Any) -> dict[str, Any]:
        options = super().model_options(recipe)
        options["num_classes"] = self._num_classes(recipe)
        options["extra"] = {"input_size": list(recipe.data.input_size)}
        return options

    def _dataset(self, recipe: Any, train: bool) -> ImageFolder:
        data: ClsData = recipe.data
        size = tuple(data.input_size)
        transform = TrainTransform(size, data.augment) if train else TestTransform(size)
        dataset = ImageFolder(
            resolve_root(data),
            data.train_split if train else data.val_split,
            transform,
            train_split=data.train_split,
            replace_unreadable=train,
            max_bad_fraction=data.max_bad_fraction,
            seed=recipe.train.seed,
            mixing=train,
        )
        expected = recipe.model.num_classes
        if train and expected is not None and expected != dataset.num_classes:
            raise DataError(
                f"{dataset.image_dir}: {dataset.num_classes} class folders but model.num_classes={expected}; "
                "set model.num_classes to the number of folders (or leave it unset)"
            )
        return dataset

    def build_train_dataset(self, recipe: Any) -> ImageFolder:
        dataset = self._dataset(recipe, train=True)
        self._train_classes = dataset.num_classes  # the soft targets' width (collate runs in the workers)
        self._class_metadata = class_names_metadata(dataset.classes, dataset.class_names)
        return dataset

    def build_val_dataset(self, recipe: Any) -> ImageFolder:
        return self._dataset(recipe, train=False)

    def collate(self, samples: list[Any]) -> dict[str, Any]:
        """Stack the samples; a training batch is mixed (mixup or CutMix) into soft targets here, per batch."""
        batch = default_collate(samples)
        if "mix_seed" not in batch:  # an evaluation batch
            return batch
        # Seeded by the samples' own seeds: the same mixing whatever the DataLoader workers or resume point.
        rng = np.random.default_rng(batch.pop("mix_seed").tolist())
        batch["image"], batch["target"], _ = mix_batch(
            batch["image"], batch["label"], self._train_classes, self._data.mix, rng
        )
        return batch

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        logits = model(batch["image"]).float()
        target = batch.get("target")
        if target is None:
            target = smooth_one_hot(batch["label"], logits.shape[1], self._data.mix.label_smoothing).to(logits.device)
        loss = soft_target_cross_entropy(logits, target)
        return loss, {}

    @torch.no_grad()
    def predict_batch(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        logits = model(batch["image"]).float()
        labels = batch["label"].to(logits.device).long()
        losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none").cpu().numpy()
        ranked = logits.topk(min(max(TOPK), logits.shape[1]), dim=1).indices.cpu().numpy()
        return [{"ranked": ranked[i], "label": int(labels[i]), "loss": float(losses[i])} for i in range(len(ranked))]

    def compute_metrics(self, predictions: Sequence[dict[str, Any]], dataset: Any, out_dir: Path) -> dict[str, Any]:
        if not predictions:
            raise DataError(f"{dataset.image_dir}: no readable validation image to evaluate")
        ranked = np.stack([p["ranked"] for p in predictions])
        labels = np.array([p["label"] for p in predictions], np.int64)
        metrics: dict[str, Any] = ranked_accuracy(ranked, labels, TOPK)
        metrics["loss"] = float(np.mean([p["loss"] for p in predictions]))
        names = names_for_data(self._recorded, dataset.classes, dataset.class_names)
        accuracy, counts = per_class_accuracy(ranked[:, 0], labels, dataset.num_classes)
        metrics["mean_class_accuracy"] = float(np.nanmean(accuracy))
        metrics["samples"] = len(labels)
        metrics["per_class_accuracy"] = [
            {"class": folder, "name": name, "top1": round(float(acc), 4), "samples": int(count)}
            for folder, name, acc, count in zip(dataset.classes, names, accuracy, counts, strict=True)
            if count > 0
        ]
        metrics[TABLES_KEY] = [
            table_spec("per-class top-1 accuracy (%)", "per_class_accuracy", ["name", "top1", "samples"], "top1")
        ]
        return metrics

    def param_groups(self, model: nn.Module, recipe: Any) -> list[dict[str, Any]]:
        # The official classification code: no weight decay on 1-D parameters (norms, biases) nor on the
        # relative-position tables.
        return weight_decay_groups(
            model,
            recipe.train.optimizer.weight_decay,
            lambda name, param: param.ndim <= 1 or any(k in name for k in NO_DECAY_KEYWORDS),
        )

    def weights_metadata(self, model: nn.Module) -> dict[str, str]:
        return dict(self._class_metadata)

    def model_from_weights(self, weights: WeightsFile) -> nn.Module:
        model = super().model_from_weights(weights)
        self._recorded = recorded_classes(weights, model.config.num_classes)
        return model

    def predictor(self, model: nn.Module, weights: WeightsFile, options: PredictOptions) -> ClsPredictor:
        recorded = recorded_classes(weights, weights.config.num_classes)
        return ClsPredictor(model, weights.config, options.input_size, options, recorded)
