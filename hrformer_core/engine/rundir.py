"""The run folder: `runs/<task>/<name>/` (never reused), with its recipe, logs, plots and checkpoints.

```
recipe.yaml                 resolved recipe (rewritten on resume when resume-safe keys change)
metrics.jsonl, metrics.csv  one row per epoch end and per evaluation: epoch, step, train_loss (+ parts, means
                            since the previous row), lr, time, the metrics when evaluated, a note when stopped
steps.csv                   one row per optimiser step: step, epoch, train_loss (+ parts), lr, seconds
results.png                 loss and lr per step, the primary metric at each evaluation
summary.json                where the run stands: steps done of the schedule's, finished or why not, metrics
weights/last.safetensors    weights at the last checkpoint; best.safetensors: best primary metric
state.pt                    training state for exact resume, mid-epoch too (weights_only-loadable)
eval/                       files written by the task's latest evaluation
```
The logs are rewritten at every checkpoint (each epoch end, each evaluation, every
`train.checkpoint_interval_steps`).
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
from hrformer_core.engine.steplog import StepLog
from hrformer_core.errors import UsageError
from hrformer_core.utils.io import unique_dir, write_text


def discard_if_unused(folder: Path) -> bool:
    """Remove a new run or eval folder that holds nothing but its recipe (its run failed); True if removed."""
    if not folder.is_dir() or not {p.name for p in folder.iterdir()} <= {"recipe.yaml"}:
        return False
    (folder / "recipe.yaml").unlink(missing_ok=True)
    folder.rmdir()
    return True


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
        self.steps_csv = self.path / "steps.csv"
        self.summary = self.path / "summary.json"
        self.plot = self.path / "results.png"
        self.eval_dir = self.path / "eval"

    def discard_if_unused(self) -> None:
        """Remove a new run's folder when the run failed before writing anything but its recipe."""
        discard_if_unused(self.path)

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

    def write_history(
        self, rows: Sequence[dict[str, Any]], steps: StepLog, primary_metric: str, plot: bool
    ) -> None:
        """Rewrite metrics.jsonl, metrics.csv, steps.csv and (when `plot`) results.png from the whole run, each
        atomically."""
        write_text(self.metrics_jsonl, "".join(json.dumps(row) + "\n" for row in rows))
        columns = list(dict.fromkeys(key for row in rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.metrics_csv, buffer.getvalue())
        write_text(self.steps_csv, steps.csv_text())
        if plot:
            plot_history(rows, steps, primary_metric, self.plot)
