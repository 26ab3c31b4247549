"""PNG curves of a run (train loss, learning rate, primary metric per epoch), drawn without pyplot state."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hrformer_core.utils.io import atomic_write


def plot_history(rows: Sequence[dict[str, Any]], primary_metric: str, path: str | os.PathLike) -> Path:
    """Three panels (loss, lr, `primary_metric`) over epochs, written atomically as PNG."""
    figure = Figure(figsize=(12, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    panels = (("train_loss", "train loss"), ("lr", "learning rate"), (primary_metric, primary_metric))
    for axis, (key, title) in zip(figure.subplots(1, 3), panels, strict=True):
        points = [(row["epoch"], row[key]) for row in rows if isinstance(row.get(key), int | float)]
        if points:
            epochs, values = zip(*points, strict=True)
            axis.plot(epochs, values, marker="o", markersize=3)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
