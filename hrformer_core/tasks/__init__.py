"""Task packages (pose, seg, cls): each owns its data, head choice, loss, metric, decoding and drawing.

The engine, evaluation, prediction, profiling, export, push and the CLI ask `get_task(name)` and never
switch on a task's name.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ..models.weights import WeightsFile, resolve_weights
from .base import Prediction, PredictOptions, Predictor, Task, cache_dir, check_predict_options
from .registry import BUILTIN_TASKS, PLUGINS_ENV, get_task, known_tasks, register_task


def load_task_model(
    spec: str | os.PathLike | None, device: str | torch.device = "cpu"
) -> tuple[Task, nn.Module, WeightsFile]:
    """Resolve `--weights`, find its task and build its model (eval mode, on `device`)."""
    weights = resolve_weights(spec)
    task = get_task(weights.task)
    model = task.model_from_weights(weights).to(device).eval()
    return task, model, weights


__all__ = [
    "BUILTIN_TASKS",
    "PLUGINS_ENV",
    "PredictOptions",
    "Prediction",
    "Predictor",
    "Task",
    "cache_dir",
    "check_predict_options",
    "get_task",
    "known_tasks",
    "load_task_model",
    "register_task",
]
