"""Prediction: sources, person boxes, the batched prediction loop, outputs and weights resolution."""

from .detectors import BoxesFile, Detector, build_detector
from .outputs import PredictionWriter
from .runner import Predictor, PredictResult, predict
from .sources import Frame, FrameStream
from .weights import LoadedWeights, load_weights

__all__ = [
    "BoxesFile",
    "Detector",
    "Frame",
    "FrameStream",
    "LoadedWeights",
    "PredictResult",
    "PredictionWriter",
    "Predictor",
    "build_detector",
    "load_weights",
    "predict",
]
