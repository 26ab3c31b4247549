"""The per-step training log: one row per optimiser step (step, epoch, loss and its parts, lr, seconds).

It travels inside the training state as one float64 tensor, so a resumed run continues exactly the log of the
checkpoint it resumed from; `steps.csv` in the run folder is written from it at every checkpoint.
"""

from __future__ import annotations

import bisect
import csv
import io
import os
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from hrformer_core.errors import CheckpointError


class StepLog:
    """Columns of floats, compact enough for a COCO run's quarter of a million steps.

    Columns: step, epoch (1-based), train_loss, train_<part> for each loss part the task reports, lr, seconds
    (wall time since the previous step, data loading included).
    """

    def __init__(self, columns: Sequence[str] = ()):
        self.columns: list[str] = list(columns)
        self._values = [array("d") for _ in self.columns]

    def __len__(self) -> int:
        return len(self._values[0]) if self._values else 0

    def append(self, step: int, epoch: int, losses: dict[str, float], lr: float, seconds: float) -> None:
        """Add the row of one step; `losses` maps train_loss and train_<part> to values. The first row fixes
        the columns."""
        if not self.columns:
            self.columns = ["step", "epoch", *losses, "lr", "seconds"]
            self._values = [array("d") for _ in self.columns]
        if list(losses) != self.columns[2:-2]:
            raise ValueError(f"step {step}: losses {list(losses)} differ from the log's {self.columns[2:-2]}")
        for values, value in zip(self._values, [step, epoch, *losses.values(), lr, seconds], strict=True):
            values.append(float(value))

    def column(self, name: str) -> list[float]:
        return list(self._values[self.columns.index(name)])

    def last(self, name: str) -> float:
        return self._values[self.columns.index(name)][-1]

    def _first_after(self, step: int) -> int:
        return bisect.bisect_right(self._values[0], step) if self._values else 0

    def mean_after(self, step: int) -> dict[str, float]:
        """Mean of every loss column over the rows after global step `step` (those of one history row)."""
        first = self._first_after(step)
        return {
            name: sum(values[first:]) / (len(values) - first)
            for name, values in zip(self.columns[2:-2], self._values[2:-2], strict=True)
            if len(values) > first
        }

    def seconds_after(self, step: int) -> float:
        return sum(self._values[-1][self._first_after(step) :]) if self._values else 0.0

    def state(self) -> dict[str, Any]:
        """The column names and one (steps, columns) float64 tensor: loadable with `weights_only=True`."""
        columns = [torch.tensor(values, dtype=torch.float64) for values in self._values]
        table = torch.stack(columns, dim=1) if columns else torch.zeros((0, 0), dtype=torch.float64)
        return {"columns": list(self.columns), "values": table}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StepLog:
        log = cls(state["columns"])
        for values, column in zip(log._values, state["values"].T, strict=True):
            values.frombytes(column.contiguous().numpy().tobytes())
        return log

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for step, epoch, *rest in zip(*self._values, strict=True):
            writer.writerow([int(step), int(epoch), *map(repr, rest)])
        return buffer.getvalue()


def read_steps_csv(path: str | os.PathLike) -> StepLog:
    """A run folder's `steps.csv` back as a StepLog (for plots and tools); a malformed file is named."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
        log = StepLog(rows[0])
        for row in rows[1:]:
            for values, value in zip(log._values, row, strict=True):
                values.append(float(value))
    except (OSError, IndexError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable steps.csv ({exc})") from None
    return log
