"""The prediction loop shared by every task: weights -> the task's predictor -> results, one image at a time.

The task named by the weights builds the predictor (person boxes and keypoints, class maps, top-k labels);
this module only resolves the weights, prepares the model for inference and streams the frames.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from ..models.fuse import optimize_for_inference
from ..models.weights import WeightsFile
from ..tasks import Prediction, PredictOptions, Predictor, Task, check_predict_options, load_task_model
from ..utils.sizes import parse_size
from .sources import FrameStream


@dataclass
class PredictionSession:
    """A task's predictor over loaded weights, with what the run summary and run.json report."""

    task: Task
    weights: WeightsFile
    predictor: Predictor
    options: PredictOptions

    def __call__(self, stream: FrameStream) -> Iterator[Prediction]:
        return self.predictor(stream)


def prepare(
    weights: str | os.PathLike | None,
    options: PredictOptions | None = None,
    device: str | torch.device = "cpu",
    expected_task: str | None = None,
) -> PredictionSession:
    """Load `weights`, check the options against its task, and build the task's predictor."""
    options = options or PredictOptions()
    if options.batch_size < 1:
        raise UsageError(f"--batch-size {options.batch_size}: expected at least 1")
    task, model, loaded = load_task_model(weights, device)
    if expected_task is not None and expected_task != task.name:
        raise UsageError(f"--task {expected_task} but the weights {weights} are a {task.name} model")
    check_predict_options(task, options)
    size = parse_size(options.input_size) if options.input_size is not None else task.default_input_size(loaded)
    options = replace(options, input_size=size)
    ready: nn.Module = optimize_for_inference(model, options.compile, inplace=True)
    return PredictionSession(task, loaded, task.predictor(ready, loaded, options), options)


def predict(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    weights: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    input_size: tuple[int, int] | str | None = None,
    batch_size: int = 8,
    flip: bool = False,
    compile: bool = False,
    **task_options: Any,
) -> Iterator[Prediction]:
    """Stream per-image results for images, folders, globs, list files, videos or `webcam:N`.

    `task_options` are the task's own (pose: boxes, detector, box_threshold, keypoints; seg: seg_mode;
    cls: topk, class_names). Nothing is written; see `PredictionWriter` for files.
    """
    options = PredictOptions(input_size, batch_size, flip, compile, task_options)
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    stream = FrameStream(sources)
    return prepare(weights, options, device)(stream)
