"""Semantic segmentation with HRFormer + OCR: prediction on user images (whole or sliding windows)."""

from __future__ import annotations

from torch import nn

from ...models.weights import WeightsFile
from ..base import PredictOptions
from ..common import InferenceOnlyTask
from .predictor import SegPredictor


class SegTask(InferenceOnlyTask):
    name = "seg"
    head = "seg"
    description = "semantic segmentation"
    primary_metric = "mIoU"
    hub_pipeline_tag = "image-segmentation"
    predict_option_names = frozenset({"seg_mode"})

    def predictor(self, model: nn.Module, weights: WeightsFile, options: PredictOptions) -> SegPredictor:
        return SegPredictor(model, weights.config, options.input_size, options)
