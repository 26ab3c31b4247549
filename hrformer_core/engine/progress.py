"""Training progress on rank 0: rich bars on a terminal, a plain log line every `log_interval` otherwise.

rich only redraws on a terminal, so CI logs and torchrun workers (whose stderr is a pipe) get the plain
lines, which carry the same numbers: loss, learning rate, speed, ETA and peak memory.
"""

from __future__ import annotations

import datetime
import sys
import time

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


class TrainProgress:
    """Reports epochs and iterations. Silent when `enabled` is false (ranks other than 0)."""

    def __init__(
        self, enabled: bool, epochs: int, steps_per_epoch: int, log_interval: int, device: torch.device
    ):
        self.enabled = enabled
        self.epochs, self.steps, self.log_interval, self.device = (
            epochs,
            steps_per_epoch,
            log_interval,
            device,
        )
        self.live = enabled and console.is_terminal
        self._bars: Progress | None = None
        self._epoch_bar = self._iter_bar = None
        self._epoch = 0
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

    def begin_epoch(self, epoch: int) -> None:
        """`epoch` is 0-based."""
        self._epoch, self._epoch_start = epoch, time.monotonic()
        if self._bars is None:
            return
        if self._epoch_bar is None:
            self._epoch_bar = self._bars.add_task("epochs", total=self.epochs, completed=epoch, stats="")
        if self._iter_bar is not None:
            self._bars.remove_task(self._iter_bar)
        self._iter_bar = self._bars.add_task(f"epoch {epoch + 1}/{self.epochs}", total=self.steps, stats="")

    def step(self, iteration: int, loss: float, lr: float) -> None:
        """After `iteration` (1-based) of the current epoch."""
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._epoch_start
        speed = iteration / elapsed if elapsed > 0 else 0.0
        stats = f"loss {loss:.4g}  lr {lr:.3g}  {speed:.2f} it/s  mem {peak_memory(self.device)}"
        if self._bars is not None:
            self._bars.update(self._iter_bar, completed=iteration, stats=stats)
        elif iteration % self.log_interval == 0 or iteration == self.steps:
            eta = (self.steps - iteration) / speed if speed > 0 else 0.0
            self.log(
                f"epoch {self._epoch + 1}/{self.epochs}  iter {iteration}/{self.steps}  {stats}  "
                f"eta {_duration(eta)}"
            )

    def end_epoch(self, summary: str) -> None:
        if self._bars is not None:
            self._bars.update(self._epoch_bar, completed=self._epoch + 1)
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
