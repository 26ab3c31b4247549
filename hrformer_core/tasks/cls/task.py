"""Image classification: top-k labels on user images with the ImageNet test transform."""

from __future__ import annotations

from torch import nn

from ...models.weights import WeightsFile
from ..base import PredictOptions
from ..common import InferenceOnlyTask
from .predictor import ClsPredictor


class ClsTask(InferenceOnlyTask):
    name = "cls"
    head = "cls"
    description = "image classification"
    primary_metric = "top1"
    hub_pipeline_tag = "image-classification"
    predict_option_names = frozenset({"topk", "class_names"})

    def predictor(self, model: nn.Module, weights: WeightsFile, options: PredictOptions) -> ClsPredictor:
        return ClsPredictor(model, weights.config, options.input_size, options)
