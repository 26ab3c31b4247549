"""The run folder: `runs/<task>/<name>/` (never reused), with its recipe, logs, plots and checkpoints.

```
recipe.yaml                 resolved recipe (rewritten on resume when resume-safe keys change)
metrics.jsonl, metrics.csv  one row per epoch: epoch, train_loss (+ parts), lr, time, metrics
results.png                 loss, lr and the primary metric per epoch
weights/last.safetensors    weights after the last epoch; best.safetensors: best primary metric
state.pt                    training state for exact resume (weights_only-loadable)
eval/                       files written by the task's latest evaluation
```
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hrformer_core.engine.plots import plot_history
from hrformer_core.errors import UsageError
from hrformer_core.utils.io import unique_dir, write_text


class RunDir:
    """Paths of one run folder, and writers for its logs."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.recipe = self.path / "recipe.yaml"
        self.state = self.path / "state.pt"
        self.weights = self.path / "weights"
        self.last_weights = self.weights / "last.safetensors"
        self.best_weights = self.weights / "best.safetensors"
        self.metrics_jsonl = self.path / "metrics.jsonl"
        self.metrics_csv = self.path / "metrics.csv"
        self.plot = self.path / "results.png"
        self.eval_dir = self.path / "eval"

    def discard_if_unused(self) -> None:
        """Remove a new run's folder when the run failed before writing anything but its recipe."""
        if self.path.is_dir() and {p.name for p in self.path.iterdir()} <= {"recipe.yaml"}:
            self.recipe.unlink(missing_ok=True)
            self.path.rmdir()

    @classmethod
    def create(cls, project: str | os.PathLike, task: str, name: str) -> RunDir:
        """A new folder `project/task/name`, or `name-2`, `name-3`, ... when taken."""
        return cls(unique_dir(Path(project) / task, name))

    @classmethod
    def create_at(cls, path: str | os.PathLike) -> RunDir:
        """Use exactly `path`, which must not exist or be empty: a run folder is never overwritten."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(
                f"run folder {path} already exists and is not empty (resume it with --resume {path})"
            )
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
        """An existing run folder to resume; it must hold recipe.yaml and state.pt."""
        run = cls(path)
        missing = [p.name for p in (run.recipe, run.state) if not p.is_file()]
        if missing:
            raise UsageError(f"{run.path}: not a resumable run folder (missing {', '.join(missing)})")
        return run

    def write_history(self, rows: Sequence[dict[str, Any]], primary_metric: str) -> None:
        """Rewrite metrics.jsonl, metrics.csv and results.png from all epoch rows (each file atomically)."""
        write_text(self.metrics_jsonl, "".join(json.dumps(row) + "\n" for row in rows))
        columns = list(dict.fromkeys(key for row in rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.metrics_csv, buffer.getvalue())
        plot_history(rows, primary_metric, self.plot)
