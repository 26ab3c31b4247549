"""PNG curves of a run (train loss and learning rate per step, the primary metric at each evaluation).

Drawn without pyplot state, so training in a thread or a notebook never touches a global figure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hrformer_core.engine.steplog import StepLog
from hrformer_core.utils.io import atomic_write


def plot_history(rows: Sequence[dict[str, Any]], steps: StepLog, primary_metric: str, path: str | os.PathLike) -> Path:
    """Three panels over optimiser steps, written atomically as PNG: the training loss of every step, the
    learning rate, and `primary_metric` at each evaluation (the history rows that carry it)."""
    figure = Figure(figsize=(12, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axis, lr_axis, metric_axis = figure.subplots(1, 3)
    if len(steps):
        step = steps.column("step")
        loss_axis.plot(step, steps.column("train_loss"), linewidth=0.8)
        lr_axis.plot(step, steps.column("lr"))
    points = [(row["step"], row[primary_metric]) for row in rows if isinstance(row.get(primary_metric), int | float)]
    if points:
        evaluated, values = zip(*points, strict=True)
        metric_axis.plot(evaluated, values, marker="o", markersize=4)
    for axis, title in ((loss_axis, "train loss"), (lr_axis, "learning rate"), (metric_axis, primary_metric)):
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
