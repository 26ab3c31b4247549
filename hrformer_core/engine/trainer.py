"""The generic training loop shared by every task.

One call, `train(recipe)`, runs on one process or on every rank of a torchrun job: seeding, data loading
with deterministic shuffling and worker seeds, AdamW with the task's parameter groups, the per-iteration
LR schedule over the run's steps, AMP, gradient clipping, DDP (SyncBN when asked), periodic evaluation,
atomic checkpoints and logs (rank 0 only), a wall-time limit that says when it cut a run short, an early
warning when the run will not fit it, NaN guards, and exact resume from any checkpoint, mid-epoch included.

A run is fixed work: `train.max_steps` (or `train.epochs`) optimiser steps, batches drawn from per-batch seeds
(`engine.sampling`), so the weights depend neither on the machine's speed nor on its number of cores.
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import time
from collections.abc import Sized
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from hrformer_core.engine.distributed import (
    DistInfo,
    all_reduce_mean,
    broadcast_buffers,
    broadcast_object,
    cleanup,
    gather_objects,
    init_distributed,
    revert_sync_batchnorm,
)
from hrformer_core.engine.evaluation import MetricTable, metric_tables, move_to, run_evaluation, scalar_metrics
from hrformer_core.engine.loaders import batches, worker_count
from hrformer_core.engine.optim import build_optimizer, build_scheduler, lr_scale, run_steps
from hrformer_core.engine.precise_bn import recompute_batchnorm_statistics
from hrformer_core.engine.progress import Projection, TrainProgress, estimate_eval, over_budget
from hrformer_core.engine.recipes import Recipe, load_recipe, resume_conflicts
from hrformer_core.engine.rundir import RunDir
from hrformer_core.engine.sampling import EpochBatches, SeededBatches, derive_seed, seed_everything
from hrformer_core.engine.schema import TrainSection
from hrformer_core.engine.state import (
    capture_rng,
    load_state,
    restore_rng,
    save_state,
    save_weights,
    weights_digest,
)
from hrformer_core.engine.steplog import StepLog
from hrformer_core.errors import DataError, HRFormerError, TrainingError, UsageError
from hrformer_core.tasks import Task, get_task
from hrformer_core.utils.console import console
from hrformer_core.utils.io import write_json
from hrformer_core.utils.threads import make_fork_safe


@dataclass
class TrainResult:
    """What a finished (or time-limited) run produced. `metrics` are those of the last evaluation.

    `note` is empty when the run did all of its `total_steps`; otherwise it says why its result is not the
    recipe's (it is also in summary.json and the last row of metrics.jsonl).
    """

    run_dir: Path
    epochs_completed: int
    global_step: int
    total_steps: int
    best_metric: float | None
    best_epoch: int | None
    best_step: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    note: str = ""
    bad_images: int = 0
    weights_digest: str = ""
    tables: list[MetricTable] = field(default_factory=list)  # the last evaluation's per-class tables


ETA_CHECK_STEP = 10  # the step of a session at which the time projection is first checked (steady state)
PRECISE_BN_STREAM = 7  # mixed into the seed of precise BN's batches, apart from every training stream


def train(
    recipe: Recipe | None = None,
    *,
    run_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    project: str | os.PathLike = "runs",
    device: str | None = None,
) -> TrainResult:
    """Train `recipe` into a new run folder, or continue the run folder `resume` exactly where it stopped.

    New runs go to `run_dir` if given (it must be new or empty), else to a fresh `project/<task>/<name>`.
    On resume, `recipe` (default: the run's saved recipe) may differ from the saved one only in
    resume-safe keys (e.g. train.epochs, train.workers, eval.*, data.root). Under torchrun, call it on every
    rank; only rank 0 writes files.

    Checkpoints are taken at the end of each epoch, at each evaluation and every
    `train.checkpoint_interval_steps` steps; resuming from one continues with the same remaining batches
    (mid-epoch too) and gives the same weights as an uninterrupted run. A stop by `train.max_time_minutes`
    evaluates, checkpoints and says that the result is not the recipe's; resuming finishes the schedule.
    """
    if recipe is None and resume is None:
        raise UsageError("train: give a recipe, or a run folder to resume")
    make_fork_safe()
    info = init_distributed(device)
    try:
        run = _Run(recipe, info, run_dir, resume, project)
        try:
            return run.run()
        except HRFormerError:
            if resume is None and info.is_main:
                run.run_dir.discard_if_unused()
            raise
    finally:
        if info.owns_group:
            cleanup()


def evaluation_steps(train: TrainSection, steps_per_epoch: int, total_steps: int) -> list[int]:
    """The steps after which the run evaluates, ascending: every `eval_interval_steps` steps when set, else at
    the end of every `eval_interval`-th epoch; always after the last step."""
    every = train.eval_interval_steps or train.eval_interval * steps_per_epoch
    return sorted({*range(every, total_steps + 1, every), total_steps})


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `train.amp` on `device`; None means fp32. fp16 exists only on CUDA."""
    if mode == "bf16":
        return torch.bfloat16
    if device.type != "cuda":
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


class _Run:
    """One training session (fresh or resumed). Built and run by `train`."""

    def __init__(
        self,
        recipe: Recipe | None,
        info: DistInfo,
        run_dir: str | os.PathLike | None,
        resume: str | os.PathLike | None,
        project: str | os.PathLike,
    ):
        self.info, self.device = info, info.device
        self.started = time.monotonic()
        self.state: dict[str, Any] | None = None
        if resume is not None:
            self.run_dir = RunDir.open(resume)
            saved = load_recipe(self.run_dir.recipe)
            self.recipe = recipe or saved
            conflicts = resume_conflicts(saved, self.recipe)
            if conflicts:
                raise UsageError(
                    f"{self.run_dir.path}: cannot resume with a changed recipe: {'; '.join(conflicts)} "
                    "(only resume-safe keys may change: train.epochs, train.max_steps, train.workers, eval.*, "
                    "data.root, ...)"
                )
            self.state = load_state(self.run_dir.state)
            if info.is_main and self.recipe != saved:
                self.recipe.save(self.run_dir.recipe)
        else:
            assert recipe is not None
            self.recipe = recipe
            path = None
            if info.is_main:
                run = (
                    RunDir.create_at(run_dir)
                    if run_dir is not None
                    else RunDir.create(project, recipe.task, recipe.name)
                )
                recipe.save(run.recipe)
                path = str(run.path)
            self.run_dir = RunDir(broadcast_object(path))
        self.task: Task = get_task(self.recipe.task)
        self.task.configure(self.recipe)
        self.cfg = self.recipe.train

    # -- set-up ------------------------------------------------------------------------------------------

    def _build_model(self) -> nn.Module:
        seed_everything(self.cfg.seed)  # the same initial weights on every rank
        model = self.task.build_model(self.recipe)
        if self.cfg.sync_bn and self.info.world_size > 1 and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            if self.cfg.sync_bn and self.info.world_size > 1:
                self._log("train.sync_bn: SyncBatchNorm needs CUDA; using per-process BatchNorm on CPU")
            model = revert_sync_batchnorm(model)
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.cfg.channels_last else model

    def _train_loader(
        self, dataset: torch.utils.data.Dataset, seed: int | None = None
    ) -> tuple[DataLoader, EpochBatches]:
        """The training batches, shuffled and augmented from `seed` (default: the recipe's)."""
        seed = self.cfg.seed if seed is None else seed
        sampler = DistributedSampler(
            dataset, num_replicas=self.info.world_size, rank=self.info.rank, shuffle=True, seed=seed
        )
        batcher = EpochBatches(sampler, self.cfg.batch_size, seed, self.info.rank)
        if batcher.steps_per_epoch == 0:
            raise DataError(
                f"data: the training set has {len(sampler)} samples per process, fewer than "
                f"train.batch_size={self.cfg.batch_size}"
            )
        loader = DataLoader(
            SeededBatches(dataset),
            batch_sampler=batcher,
            num_workers=worker_count(self.cfg.workers),
            collate_fn=self.task.collate,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=getattr(dataset, "worker_init_fn", None),
            generator=torch.Generator(),  # starting workers never draws from the global stream
        )
        return loader, batcher

    def _log(self, message: str) -> None:
        if self.info.is_main:
            console.print(message, markup=False, highlight=False, soft_wrap=True)

    # -- main loop ---------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        self.model = self._build_model()
        self.train_set = train_set = self.task.build_train_dataset(self.recipe)
        self.record_skipped = getattr(train_set, "record_skipped", None)
        self.val_set = self.task.build_val_dataset(self.recipe)
        loader, batcher = self._train_loader(train_set)
        self.steps_per_epoch = steps = batcher.steps_per_epoch
        self.total_steps = run_steps(self.cfg, steps)
        self.lr_scale = lr_scale(self.cfg, self.info.world_size)
        self.optimizer = build_optimizer(self.task.param_groups(self.model, self.recipe), self.recipe, self.lr_scale)
        self.scheduler = build_scheduler(self.optimizer, self.recipe, steps, self.lr_scale)
        self.dtype = amp_dtype(self.cfg.amp, self.device)
        if self.cfg.amp == "fp16" and self.dtype is None:
            self._log("train.amp=fp16 needs CUDA; training in fp32 (train.amp=bf16 works on CPU)")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self._restore()
        self.eval_steps = evaluation_steps(self.cfg, steps, self.total_steps)
        wrapped = self._wrap(self.model)
        stopped = False
        progress = TrainProgress(
            self.info.is_main,
            math.ceil(self.total_steps / steps),
            steps,
            self.cfg.log_interval,
            self.device,
            self.total_steps,
        )
        with progress:
            self.progress = progress
            self._describe(len(train_set))
            self.tick = time.monotonic()
            try:
                while self.step < self.total_steps and not stopped:
                    batcher.start(self.epoch, self.epoch_step)
                    if hasattr(train_set, "set_epoch"):
                        train_set.set_epoch(self.epoch)
                    stopped = self._train_epoch(wrapped, loader)
            except KeyboardInterrupt:
                progress.log(f"interrupted; continue with --resume {self.run_dir.path}")
                raise
            bad = self._bad_images(train_set) + self._bad_images(self.val_set)
            if bad:
                progress.log(f"warning: {bad} unreadable or invalid images were skipped")
        return self._result(stopped, bad)

    def _restore(self) -> None:
        """Seed this rank, and on resume load every saved state, down to the position inside the epoch."""
        self.step, self.epoch, self.epoch_step = 0, 0, 0  # epoch: 0-based, in progress; epoch_step: its batches done
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_step: int | None = None
        self.history: list[dict[str, Any]] = []
        self.earlier_sessions_seconds = 0.0
        self.last_metrics: dict[str, float] = {}
        self.last_tables: list[MetricTable] = []
        self.step_log = StepLog()
        self.checkpoint_step: int | None = None
        self.note = ""
        self.session_steps, self.measured_seconds, self.eval_seconds = 0, 0.0, []
        self.budget_warned = False
        seed_everything(derive_seed(self.cfg.seed, self.info.rank))
        if self.state is None:
            return
        state = self.state
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.epoch_step = state["global_step"], state["epoch"], state.get("epoch_step", 0)
        self.best, self.best_epoch, self.best_step = state["best_metric"], state["best_epoch"], state.get("best_step")
        self.history, self.last_metrics = state["history"], state["metrics"]
        self.earlier_sessions_seconds = self.history[-1].get("elapsed", 0.0) if self.history else 0.0
        if "steps" in state:
            self.step_log = StepLog.from_state(state["steps"])
        self.checkpoint_step = self.step
        saved_steps = state.get("steps_per_epoch", self.steps_per_epoch)
        if saved_steps != self.steps_per_epoch:
            self._log(
                f"the training set now gives {self.steps_per_epoch} steps per epoch, {saved_steps} when the run was "
                "saved: the run continues, but will not repeat the original exactly"
            )
        if self.epoch_step >= self.steps_per_epoch:
            self.epoch, self.epoch_step = self.epoch + 1, 0
        if len(state["rng"]) == self.info.world_size:
            restore_rng(state["rng"][self.info.rank], self.device)
        else:
            self._log(
                f"resuming with {self.info.world_size} processes instead of {len(state['rng'])}: "
                "random streams restart, so the run will not repeat the original exactly"
            )

    def _after_step(self, epoch: int, stopped: bool) -> None:
        """After a step of `epoch` (0-based): evaluate when due (or stopped), record a history row at an epoch's
        end or an evaluation, checkpoint at those and every `train.checkpoint_interval_steps`."""
        epoch_done = self.epoch_step == self.steps_per_epoch
        evaluate = stopped or self._evaluation_due(self.step)
        if epoch_done:
            self.epoch, self.epoch_step = epoch + 1, 0
        interval = self.cfg.checkpoint_interval_steps
        if not (epoch_done or evaluate or (interval is not None and self.step % interval == 0)):
            return
        row, improved = None, False
        if epoch_done or evaluate:
            metrics = self._evaluate() if evaluate else {}
            row = self._row(epoch, metrics)
            if stopped:
                self.note = self._stop_note()
                row["note"] = self.note
            self.history.append(row)
            improved = self._update_best(metrics, epoch + 1)
        # results.png (about half a second of plotting) at evaluations and at the end, not at every epoch end.
        self._checkpoint(improved, plot=evaluate or self.step >= self.total_steps)
        if row is not None:
            self.progress.end_epoch(self._summary(row, improved))
        if stopped:
            self.progress.log(self.note)
        elif evaluate and self.session_steps >= ETA_CHECK_STEP:
            self._check_budget()  # now with a measured evaluation time
        self.tick = time.monotonic()  # a step's seconds never include evaluations or checkpoints

    def _evaluation_due(self, step: int) -> bool:
        index = bisect.bisect_left(self.eval_steps, step)
        return index < len(self.eval_steps) and self.eval_steps[index] == step

    def _evaluate(self) -> dict[str, Any]:
        started = time.monotonic()
        if self.cfg.precise_bn_batches:
            self._recompute_batchnorm()
        metrics = run_evaluation(
            self.task, self.model, self.val_set, self.recipe, self.run_dir.eval_dir, self.device, self.progress
        )
        self.eval_seconds.append(time.monotonic() - started)
        self.last_metrics = scalar_metrics(metrics)
        self.last_tables = metric_tables(metrics)
        return metrics

    def _recompute_batchnorm(self) -> None:
        """Precise BN on `train.precise_bn_batches` training batches drawn for this step alone: the training
        stream, and with it the run's weights, stay as without it."""
        loader, _ = self._train_loader(self.train_set, derive_seed(self.cfg.seed, self.step, PRECISE_BN_STREAM))
        autocast = torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else nullcontext()

        def forward(model: nn.Module, batch: Any) -> None:
            with autocast:
                self.task.loss(model, move_to(batch, self.device))

        recompute_batchnorm_statistics(
            self.model, itertools.islice(batches(loader), self.cfg.precise_bn_batches), forward
        )

    def _row(self, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        """The history row ending at this step: mean losses, training time since the previous row, wall time
        since the run began (earlier sessions of a resumed run included, so metric-versus-time curves hold), lr
        and metrics."""
        previous = self.history[-1]["step"] if self.history else 0
        row: dict[str, Any] = {"epoch": epoch + 1, "step": self.step, **self.step_log.mean_after(previous)}
        row.update(lr=self.step_log.last("lr"), time=round(self.step_log.seconds_after(previous), 3))
        row.update(elapsed=round(self.earlier_sessions_seconds + time.monotonic() - self.started, 3))
        row.update(scalar_metrics(metrics))
        return row

    def _stop_note(self) -> str:
        return (
            f"stopped by the time limit (train.max_time_minutes={self.cfg.max_time_minutes:g}) at step {self.step} "
            f"of {self.total_steps}: the schedule did not finish; this {self.task.primary_metric} is not the result "
            f"of recipe {self.recipe.name} (finish it with --resume {self.run_dir.path})"
        )

    def _projection(self) -> Projection | None:
        """This run's expected time, once a step after the session's first has been measured."""
        if self.session_steps < 2:
            return None
        step_seconds = self.measured_seconds / (self.session_steps - 1)
        eval_seconds = (
            sum(self.eval_seconds) / len(self.eval_seconds)
            if self.eval_seconds
            else estimate_eval(step_seconds, len(self.val_set), self.cfg.batch_size)
        )
        return Projection(
            elapsed=time.monotonic() - self.started,
            step_seconds=step_seconds,
            steps_left=self.total_steps - self.step,
            evals_left=len(self.eval_steps) - bisect.bisect_right(self.eval_steps, self.step),
            eval_seconds=eval_seconds,
        )

    def _check_budget(self) -> None:
        """Say once, as soon as it is known, that the run will not finish within `train.max_time_minutes`."""
        projection = self._projection()
        if self.budget_warned or self.cfg.max_time_minutes is None or projection is None:
            return
        message = over_budget(projection, self.cfg.max_time_minutes, self.step, self.total_steps)
        if message is not None:
            self.progress.log(message)
            self.budget_warned = True

    def _result(self, stopped: bool, bad_images: int) -> TrainResult:
        """The run's result, after checking that every rank holds the same final weights."""
        broadcast_buffers(self.model)
        digests = gather_objects(weights_digest(self.model))
        if len(set(digests)) > 1:
            raise TrainingError(
                f"ranks ended with different weights (digests {digests}); DDP went out of sync"
            )
        return TrainResult(
            run_dir=self.run_dir.path,
            epochs_completed=self.epoch,
            global_step=self.step,
            total_steps=self.total_steps,
            best_metric=self.best,
            best_epoch=self.best_epoch,
            best_step=self.best_step,
            metrics=self.last_metrics,
            stopped_early=stopped,
            note=self.note,
            bad_images=bad_images,
            weights_digest=digests[0],
            tables=self.last_tables,
        )

    def _wrap(self, model: nn.Module) -> nn.Module:
        """The module the training steps call: DDP across processes, compiled when the recipe asks."""
        if self.info.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(
                model, device_ids=device_ids, find_unused_parameters=self.task.find_unused_parameters
            )
        return torch.compile(model) if self.cfg.compile else model

    def _train_epoch(self, model: nn.Module, loader: DataLoader) -> bool:
        """The rest of the current epoch, up to the run's last step. Returns whether the time limit stopped it."""
        model.train()
        epoch = self.epoch
        self.progress.begin_epoch(epoch, self.epoch_step, self.step)
        limit = self.cfg.max_time_minutes * 60 if self.cfg.max_time_minutes is not None else math.inf
        for iteration, batch in enumerate(batches(loader), self.epoch_step + 1):
            if self.record_skipped is not None:  # images that DataLoader workers had to replace
                self.record_skipped(batch)
            autocast = torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else nullcontext()
            with autocast:
                loss, parts = self.task.loss(model, move_to(batch, self.device))
            names = sorted(parts)
            local = [loss.detach().float().reshape(())]
            local += [torch.as_tensor(parts[k], dtype=torch.float32).detach().reshape(()) for k in names]
            local.append(torch.tensor(float(time.monotonic() - self.started >= limit)))
            reduced = all_reduce_mean(torch.stack([t.to(self.device) for t in local])).cpu()
            value = float(reduced[0])
            if not math.isfinite(value):
                raise TrainingError(self._nan_message(value, epoch, iteration))
            lr = self.optimizer.param_groups[0]["lr"]
            self._optimise(loss)
            losses = {"train_loss": value}
            losses.update({f"train_{name}": v for name, v in zip(names, reduced[1:-1].tolist(), strict=True)})
            self._record_step(epoch, losses, lr)
            self.epoch_step = iteration
            stopped = bool(reduced[-1] > 0) and self.step < self.total_steps
            projection = self._projection()
            self.progress.step(iteration, self.step, value, lr, projection.remaining if projection else None)
            if self.session_steps == ETA_CHECK_STEP:
                self._check_budget()
            self._after_step(epoch, stopped)
            if stopped or self.step >= self.total_steps:
                return stopped
        return False

    def _record_step(self, epoch: int, losses: dict[str, float], lr: float) -> None:
        """Log the step just taken; the session's steps after its first give the measured step time."""
        now = time.monotonic()
        seconds, self.tick = now - self.tick, now
        self.step_log.append(self.step, epoch + 1, losses, lr, seconds)
        self.session_steps += 1
        if self.session_steps > 1:
            self.measured_seconds += seconds

    def _optimise(self, loss: torch.Tensor) -> None:
        """Backward, optional gradient clipping, optimiser and LR steps (through the GradScaler for fp16)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1

    def _nan_message(self, value: float, epoch: int, iteration: int) -> str:
        kept = (
            f"the last good checkpoint ({self.run_dir.last_weights}, step {self.checkpoint_step}) is unchanged"
            if self.checkpoint_step is not None
            else "no checkpoint had been written yet"
        )
        return (
            f"non-finite loss ({value}) at step {self.step + 1} (epoch {epoch + 1}, iteration {iteration}); "
            f"{kept}. Lower train.optimizer.lr, set train.grad_clip, or check the data"
        )

    def _update_best(self, metrics: dict[str, Any], epoch: int) -> bool:
        value = metrics.get(self.task.primary_metric)
        if not isinstance(value, int | float) or math.isnan(value):
            return False
        if self.best is not None and value <= self.best:
            return False
        self.best, self.best_epoch, self.best_step = float(value), epoch, self.step
        return True

    def _checkpoint(self, improved: bool, plot: bool) -> None:
        """Save weights (last, and best if improved), the training state, the logs and summary.json; rank 0
        writes. The state holds the position inside the epoch, so resuming continues with its next batch."""
        rng = gather_objects(capture_rng(self.device))
        self.checkpoint_step = self.step
        if not self.info.is_main:
            return
        epoch = self.epoch + (1 if self.epoch_step else 0)  # 1-based epoch of the last step
        meta = {"task": self.recipe.task, "recipe": self.recipe.name, "epoch": str(epoch), "step": str(self.step)}
        meta.update(self.task.weights_metadata(self.model))
        save_weights(self.model, self.run_dir.last_weights, meta)
        if improved:
            save_weights(
                self.model, self.run_dir.best_weights, {**meta, self.task.primary_metric: str(self.best)}
            )
        save_state(
            self.run_dir.state,
            {
                "epoch": self.epoch,
                "epoch_step": self.epoch_step,
                "steps_per_epoch": self.steps_per_epoch,
                "global_step": self.step,
                "best_metric": self.best,
                "best_epoch": self.best_epoch,
                "best_step": self.best_step,
                "history": self.history,
                "metrics": self.last_metrics,
                "world_size": self.info.world_size,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "rng": rng,
                "steps": self.step_log.state(),
            },
        )
        self.run_dir.write_history(self.history, self.step_log, self.task.primary_metric, plot)
        write_json(self.run_dir.summary, self._summary_record())

    def _summary_record(self) -> dict[str, Any]:
        """summary.json: how far the run got against its schedule, and if it stopped short, why."""
        return {
            "recipe": self.recipe.name,
            "task": self.recipe.task,
            "finished": self.step >= self.total_steps,
            "step": self.step,
            "total_steps": self.total_steps,
            "epochs_completed": self.epoch,
            "note": self.note or None,
            "metrics": self.last_metrics,
            "best": {"metric": self.task.primary_metric, "value": self.best, "step": self.best_step},
        }

    def _describe(self, train_size: int) -> None:
        cfg, recipe = self.cfg, self.recipe
        root = Path(recipe.data.root).resolve() if recipe.data.root else "-"
        precision = str(self.dtype).removeprefix("torch.") if self.dtype is not None else "fp32"
        action = (
            f"resuming at step {self.step + 1} (epoch {self.epoch + 1}, iteration {self.epoch_step + 1})"
            if self.step
            else "starting"
        )
        sized_by = "train.max_steps" if cfg.max_steps is not None else f"train.epochs={cfg.epochs}"
        evaluation = (
            f"every {cfg.eval_interval_steps} steps"
            if cfg.eval_interval_steps is not None
            else f"every {cfg.eval_interval} epoch(s)"
        )
        limit = f"  time limit {cfg.max_time_minutes:g} min" if cfg.max_time_minutes is not None else ""
        if cfg.precise_bn_batches:
            evaluation += f" (BatchNorm statistics re-estimated on {cfg.precise_bn_batches} batches first)"
        opt, global_batch = cfg.optimizer, self.info.world_size * cfg.batch_size
        lr = f"  lr {opt.lr * self.lr_scale:.3g}" + (
            f" ({opt.lr:g} per {opt.lr_batch} images, global batch {global_batch})" if opt.lr_batch else ""
        )
        self._log(
            f"{action}: run {self.run_dir.path}  task {recipe.task}  model {recipe.model.name or '-'}  "
            f"data {root}  {train_size} train / {len(self.val_set)} val samples  "
            f"{self.info.world_size} process(es) × batch {cfg.batch_size}  {self.total_steps} steps ({sized_by}, "
            f"{self.steps_per_epoch} per epoch){lr}  evaluation {evaluation}{limit}  "
            f"device {self.device}  precision {precision}"
        )
        if self.step >= self.total_steps:
            longer = "train.max_steps" if cfg.max_steps is not None else "train.epochs"
            self._log(f"the run already finished its {self.step} steps; raise {longer} to train longer")

    def _summary(self, row: dict[str, Any], improved: bool) -> str:
        parts = [
            f"epoch {row['epoch']}/{self.progress.epochs}",
            f"step {row['step']}/{self.total_steps}",
            f"loss {row['train_loss']:.4g}",
            f"lr {row['lr']:.3g}",
            f"{row['time']:.1f}s",
        ]
        metric = self.task.primary_metric
        if metric in row:
            parts.append(f"{metric} {row[metric]:.4g}" + (" (best)" if improved else ""))
        return "  ".join(parts)

    def _bad_images(self, dataset: Any) -> int:
        """How many images the dataset's `bad_images` collection names, merged over all ranks."""
        bad = getattr(dataset, "bad_images", None)
        local = sorted(map(str, bad)) if isinstance(bad, Sized) and not isinstance(bad, str) else []
        return len(set().union(*map(set, gather_objects(local))))
