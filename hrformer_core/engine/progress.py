"""Training progress on rank 0: rich bars on a terminal, a plain log line every `log_interval` otherwise.

rich only redraws on a terminal, so CI logs and torchrun workers (whose stderr is a pipe) get the plain
lines, which carry the same numbers: loss, learning rate, speed, ETA and peak memory. `Projection` is the
run's expected time (steps and evaluations), checked against `train.max_time_minutes` early in a run.
"""

from __future__ import annotations

import datetime
import sys
import time
from dataclasses import dataclass

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hrformer_core.utils.console import console


def peak_memory(device: torch.device) -> str:
    """Peak memory of this process: CUDA allocations on a GPU, resident set size on CPU."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f}G"
    if sys.platform.startswith("linux"):
        import resource

        return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}G"
    return "-"


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


@dataclass
class Projection:
    """The run's time so far and to come: its remaining steps at the measured step time, and its evaluations.

    `eval_seconds` is measured once an evaluation has run; before that it is estimated (`estimate_eval`).
    """

    elapsed: float
    step_seconds: float
    steps_left: int
    evals_left: int
    eval_seconds: float

    @property
    def remaining(self) -> float:
        return self.steps_left * self.step_seconds + self.evals_left * self.eval_seconds

    @property
    def total(self) -> float:
        return self.elapsed + self.remaining


def estimate_eval(step_seconds: float, val_samples: int, batch_size: int) -> float:
    """An evaluation's time before one was measured: a forward pass costs about a third of a training step."""
    return step_seconds * val_samples / batch_size / 3


def over_budget(projection: Projection, limit_minutes: float, step: int, total_steps: int) -> str | None:
    """The one-line warning when `projection` exceeds `train.max_time_minutes`, else None."""
    limit = limit_minutes * 60
    if projection.total <= limit:
        return None
    affordable = (limit - projection.elapsed - projection.evals_left * projection.eval_seconds) / max(
        projection.step_seconds, 1e-9
    )
    stop = min(total_steps, step + max(0, int(affordable)))
    return (
        f"warning: at {projection.step_seconds:.2f} s a step this run needs about {projection.total / 60:.1f} min "
        f"({projection.steps_left} more steps and {projection.evals_left} evaluation(s)), more than "
        f"train.max_time_minutes={limit_minutes:g}: it will stop at about step {stop} of {total_steps}, before "
        "its schedule ends, and its result will not be the recipe's"
    )


class TrainProgress:
    """Reports the run's steps and each epoch's iterations. Silent when `enabled` is false (ranks other than 0).

    `total_steps` defaults to `epochs` × `steps_per_epoch` (a run sized in epochs).
    """

    def __init__(
        self,
        enabled: bool,
        epochs: int,
        steps_per_epoch: int,
        log_interval: int,
        device: torch.device,
        total_steps: int | None = None,
    ):
        self.enabled = enabled
        self.epochs, self.steps, self.log_interval, self.device = (
            epochs,
            steps_per_epoch,
            log_interval,
            device,
        )
        self.total_steps = total_steps if total_steps is not None else epochs * steps_per_epoch
        self.live = enabled and console.is_terminal
        self._bars: Progress | None = None
        self._run_bar = self._iter_bar = None
        self._epoch, self._first_iteration = 0, 0
        self._epoch_start = time.monotonic()

    def __enter__(self) -> TrainProgress:
        if self.live:
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeRemainingColumn(),
                console=console,
            )
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def log(self, message: str) -> None:
        if self.enabled:
            console.print(message, markup=False, highlight=False, soft_wrap=True)

    def begin_epoch(self, epoch: int, done: int = 0, global_step: int = 0) -> None:
        """`epoch` is 0-based; `done` iterations of it ran before (a run resumed mid-epoch)."""
        self._epoch, self._first_iteration, self._epoch_start = epoch, done, time.monotonic()
        if self._bars is None:
            return
        if self._run_bar is None:
            self._run_bar = self._bars.add_task("steps", total=self.total_steps, completed=global_step, stats="")
        if self._iter_bar is not None:
            self._bars.remove_task(self._iter_bar)
        self._iter_bar = self._bars.add_task(
            f"epoch {epoch + 1}/{self.epochs}", total=self.steps, completed=done, stats=""
        )

    def step(self, iteration: int, global_step: int, loss: float, lr: float, eta: float | None = None) -> None:
        """After `iteration` (1-based) of the current epoch, global step `global_step`; `eta` in seconds."""
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._epoch_start
        done = iteration - self._first_iteration
        speed = done / elapsed if elapsed > 0 else 0.0
        stats = f"loss {loss:.4g}  lr {lr:.3g}  {speed:.2f} it/s  mem {peak_memory(self.device)}"
        if self._bars is not None:
            self._bars.update(self._iter_bar, completed=iteration, stats=stats)
            self._bars.update(self._run_bar, completed=global_step)
        elif iteration % self.log_interval == 0 or iteration == self.steps or global_step == self.total_steps:
            if eta is None:
                eta = (self.total_steps - global_step) / speed if speed > 0 else 0.0
            self.log(
                f"epoch {self._epoch + 1}/{self.epochs}  iter {iteration}/{self.steps}  "
                f"step {global_step}/{self.total_steps}  {stats}  eta {_duration(eta)}"
            )

    def end_epoch(self, summary: str) -> None:
        """Print a history row's summary (at an epoch's end or an evaluation)."""
        self.log(summary)

    def begin_eval(self, total: int) -> int | None:
        """A bar for an evaluation pass (terminal only); pass the result to `eval_step`."""
        if self._bars is None:
            return None
        return self._bars.add_task("evaluating", total=total, stats="")

    def eval_step(self, bar: int | None) -> None:
        if self._bars is not None and bar is not None:
            self._bars.advance(bar)

    def end_eval(self, bar: int | None) -> None:
        if self._bars is not None and bar is not None:
            self._bars.remove_task(bar)
