"""Prediction shared by every task: sources, the prediction loop and its output files."""

from .outputs import PredictionWriter
from .runner import PredictionSession, predict, prepare
from .sources import Frame, FrameStream

__all__ = ["Frame", "FrameStream", "PredictionSession", "PredictionWriter", "predict", "prepare"]
