"""A tiny task package for the engine tests: a small conv net classifying random 8×8 images.

It is not an HRFormer model, so it shows what a new task needs: only its own module. It trains, evaluates
and predicts (`hrformer predict --weights <toy run>`) through the same engine, evaluation and prediction
paths as pose. Its training set draws from python, numpy and torch random generators (so exact resume is
really tested), can be poisoned with NaN images in one epoch (the NaN guard), and its validation set can
report bad images. Importing this module registers the task as "toy"; worker processes import it through
HRFORMER_PLUGINS.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from hrformer_core.data.transforms import normalize_image
from hrformer_core.engine.optim import weight_decay_groups
from hrformer_core.engine.schema import DataSection, EvalSection, ModelSection
from hrformer_core.models.checkpoint import load_state_dict_strict
from hrformer_core.models.weights import WeightsFile
from hrformer_core.predict.drawing import BOX_COLOR, put_label
from hrformer_core.predict.sources import Frame, frame_image_id
from hrformer_core.tasks import PredictOptions, Task, register_task
from hrformer_core.utils.io import write_json


@dataclass
class ToyData(DataSection):
    num_train: int = 24
    num_val: int = 10
    image_size: int = 8
    num_classes: int = 3
    poison_epoch: int = -1  # training images are NaN in this epoch
    bad_val_images: int = 0


@dataclass
class ToyModel(ModelSection):
    name: str = "toy-cnn"
    width: int = 4
    dropout: float = 0.2


@dataclass
class ToyEval(EvalSection):
    batch_size: int = 4


class ToyDataset(Dataset):
    def __init__(self, size: int, data: ToyData, seed: int, augment: bool):
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, data.num_classes, (size,), generator=generator)
        noise = torch.randn(size, 3, data.image_size, data.image_size, generator=generator)
        self.images = noise + self.labels.view(-1, 1, 1, 1).float()
        self.augment, self.poison_epoch, self.epoch = augment, data.poison_epoch, 0
        self.bad_images = {f"val_{i}.jpg" for i in range(data.bad_val_images)} if not augment else set()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.images[index].clone()
        if self.augment:
            if random.random() < 0.5:
                image = image.flip(-1)
            image += torch.from_numpy(np.random.normal(0.0, 0.1, image.shape).astype(np.float32))
            image += 0.1 * torch.randn(image.shape)
        if self.epoch == self.poison_epoch:
            image.fill_(float("nan"))
        return {"image": image, "label": self.labels[index]}


class ToyNet(nn.Module):
    def __init__(self, width: int, classes: int, dropout: float):
        super().__init__()
        self.settings = {"width": width, "classes": classes, "dropout": dropout}
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean(dim=(2, 3)))


@dataclass
class ToyResult:
    frame: Frame
    image_id: int
    label: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.frame.record(self.image_id), "label": self.label}

    def records(self) -> list[dict[str, Any]]:
        return [self.to_dict()]

    def annotate(self) -> np.ndarray:
        canvas = np.ascontiguousarray(self.frame.image.copy())
        put_label(canvas, f"class {self.label}", (0, 14), BOX_COLOR)
        return canvas

    def label_maps(self) -> dict[str, np.ndarray]:
        return {}

    def counts(self) -> dict[str, int]:
        return {"labelled": 1}

    def describe(self) -> str:
        return f"class {self.label}"


class ToyPredictor:
    def __init__(self, model: nn.Module, options: PredictOptions):
        self.model, self.input_size, self.notes = model, options.input_size, []

    def summary_notes(self) -> list[str]:
        return []

    def __call__(self, frames: Iterable[Frame]) -> Iterator[ToyResult]:
        for count, frame in enumerate(frames, 1):
            height, width = self.input_size
            x = torch.from_numpy(normalize_image(cv2.resize(frame.image, (width, height))))[None]
            with torch.inference_mode():
                label = int(self.model(x).argmax(1))
            yield ToyResult(frame, frame_image_id(frame, count), label)


class ToyTask(Task):
    name = "toy"
    primary_metric = "accuracy"
    data_schema = ToyData
    model_schema = ToyModel
    eval_schema = ToyEval

    def build_model(self, recipe: Any) -> nn.Module:
        return ToyNet(recipe.model.width, recipe.data.num_classes, recipe.model.dropout)

    def build_train_dataset(self, recipe: Any) -> ToyDataset:
        return ToyDataset(recipe.data.num_train, recipe.data, seed=1, augment=True)

    def build_val_dataset(self, recipe: Any) -> ToyDataset:
        return ToyDataset(recipe.data.num_val, recipe.data, seed=2, augment=False)

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = model(batch["image"])
        loss = F.cross_entropy(logits, batch["label"])
        return loss, {"acc": (logits.argmax(1) == batch["label"]).float().mean()}

    def predict_batch(self, model: nn.Module, batch: Any) -> list[int]:
        return model(batch["image"]).argmax(1).cpu().tolist()

    def compute_metrics(self, predictions: Sequence[int], dataset: Any, out_dir: Path) -> dict[str, float]:
        write_json(out_dir / "predictions.json", list(predictions))
        correct = sum(int(p == int(label)) for p, label in zip(predictions, dataset.labels, strict=True))
        return {"accuracy": correct / len(dataset), "num_samples": len(predictions)}

    def param_groups(self, model: nn.Module, recipe: Any) -> list[dict[str, Any]]:
        return weight_decay_groups(model, recipe.train.optimizer.weight_decay, lambda name, p: p.ndim == 1)

    def weights_metadata(self, model: nn.Module) -> dict[str, str]:
        return {"toy_settings": json.dumps(model.settings)}

    def model_from_weights(self, weights: WeightsFile) -> nn.Module:
        model = ToyNet(**json.loads(weights.metadata["toy_settings"]))
        load_state_dict_strict(model, weights.tensors, str(weights.path))
        return model.eval()

    def default_input_size(self, weights: WeightsFile) -> tuple[int, int]:
        return (8, 8)

    def predictor(self, model: nn.Module, weights: WeightsFile, options: PredictOptions) -> ToyPredictor:
        return ToyPredictor(model, options)


register_task("toy", ToyTask)
