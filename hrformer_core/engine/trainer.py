"""The generic training loop shared by every task.

One call, `train(recipe)`, runs on one process or on every rank of a torchrun job: seeding, data loading
with deterministic shuffling and worker seeds, AdamW with the task's parameter groups, the per-iteration
LR schedule, AMP, gradient clipping, DDP (SyncBN when asked), periodic evaluation, atomic checkpoints and
logs (rank 0 only), a wall-time limit, NaN guards, and exact resume from the last finished epoch.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Sized
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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
from hrformer_core.engine.evaluation import move_to, run_evaluation, scalar_metrics
from hrformer_core.engine.loaders import batches, worker_count
from hrformer_core.engine.optim import build_optimizer, build_scheduler
from hrformer_core.engine.progress import TrainProgress
from hrformer_core.engine.recipes import Recipe, load_recipe, resume_conflicts
from hrformer_core.engine.rundir import RunDir
from hrformer_core.engine.state import (
    capture_rng,
    load_state,
    restore_rng,
    save_state,
    save_weights,
    weights_digest,
)
from hrformer_core.errors import DataError, HRFormerError, TrainingError, UsageError
from hrformer_core.tasks import Task, get_task
from hrformer_core.utils.console import console
from hrformer_core.utils.threads import make_fork_safe


@dataclass
class TrainResult:
    """What a finished (or time-limited) run produced. `metrics` are those of the last evaluation."""

    run_dir: Path
    epochs_completed: int
    global_step: int
    best_metric: float | None
    best_epoch: int | None
    metrics: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    bad_images: int = 0
    weights_digest: str = ""


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

    Checkpoints are taken at the end of each epoch. A stop by `train.max_time_minutes` evaluates and
    checkpoints the partial epoch, which then counts as done: resuming continues with the next epoch.
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


def derive_seed(*parts: int) -> int:
    """A 32-bit seed mixed from non-negative integers (seed, rank, epoch, ...): one stream per combination."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker init: seed python and numpy from the worker's torch seed, then the dataset's hook."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    info = torch.utils.data.get_worker_info()
    hook = getattr(info.dataset, "worker_init_fn", None) if info is not None else None
    if callable(hook):
        hook(worker_id)


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
                    "(only resume-safe keys may change: train.epochs, train.workers, eval.*, data.root, ...)"
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

    def _train_loader(self, dataset: torch.utils.data.Dataset) -> tuple[DataLoader, DistributedSampler]:
        sampler = DistributedSampler(
            dataset, num_replicas=self.info.world_size, rank=self.info.rank, shuffle=True, seed=self.cfg.seed
        )
        self.loader_generator = torch.Generator()
        loader = DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            num_workers=worker_count(self.cfg.workers),
            collate_fn=self.task.collate,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
            worker_init_fn=seed_worker,
            generator=self.loader_generator,
        )
        if len(loader) == 0:
            raise DataError(
                f"data: the training set has {len(sampler)} samples per process, fewer than "
                f"train.batch_size={self.cfg.batch_size}"
            )
        return loader, sampler

    def _log(self, message: str) -> None:
        if self.info.is_main:
            console.print(message, markup=False, highlight=False, soft_wrap=True)

    # -- main loop ---------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        self.model = self._build_model()
        train_set = self.task.build_train_dataset(self.recipe)
        self.record_skipped = getattr(train_set, "record_skipped", None)
        self.val_set = self.task.build_val_dataset(self.recipe)
        loader, sampler = self._train_loader(train_set)
        steps = len(loader)
        self.optimizer = build_optimizer(self.task.param_groups(self.model, self.recipe), self.recipe)
        self.scheduler = build_scheduler(self.optimizer, self.recipe, steps)
        self.dtype = amp_dtype(self.cfg.amp, self.device)
        if self.cfg.amp == "fp16" and self.dtype is None:
            self._log("train.amp=fp16 needs CUDA; training in fp32 (train.amp=bf16 works on CPU)")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        start_epoch = self._restore()
        wrapped = self._wrap(self.model)
        stopped = False
        progress = TrainProgress(
            self.info.is_main, self.cfg.epochs, steps, self.cfg.log_interval, self.device
        )
        with progress:
            self.progress = progress
            self._describe(len(train_set), steps, start_epoch)
            try:
                for epoch in range(start_epoch, self.cfg.epochs):
                    sampler.set_epoch(epoch)
                    if hasattr(train_set, "set_epoch"):
                        train_set.set_epoch(epoch)
                    self.loader_generator.manual_seed(derive_seed(self.cfg.seed, self.info.rank, epoch))
                    row, stopped = self._train_epoch(wrapped, loader, epoch)
                    self._end_epoch(row, stopped)
                    if stopped:
                        break
            except KeyboardInterrupt:
                progress.log(f"interrupted; continue with --resume {self.run_dir.path}")
                raise
            bad = self._bad_images(train_set) + self._bad_images(self.val_set)
            if bad:
                progress.log(f"warning: {bad} unreadable or invalid images were skipped")
        return self._result(stopped, bad)

    def _restore(self) -> int:
        """Seed this rank, and on resume load every saved state. Returns the first epoch to train."""
        self.step, self.best, self.best_epoch = 0, None, None
        self.history: list[dict[str, Any]] = []
        self.last_metrics: dict[str, float] = {}
        seed_everything(derive_seed(self.cfg.seed, self.info.rank))
        if self.state is None:
            return 0
        state = self.state
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.best, self.best_epoch = (
            state["global_step"],
            state["best_metric"],
            state["best_epoch"],
        )
        self.history, self.last_metrics = state["history"], state["metrics"]
        if len(state["rng"]) == self.info.world_size:
            restore_rng(state["rng"][self.info.rank], self.device)
        else:
            self._log(
                f"resuming with {self.info.world_size} processes instead of {len(state['rng'])}: "
                "random streams restart, so the run will not repeat the original exactly"
            )
        return state["epoch"]

    def _end_epoch(self, row: dict[str, Any], stopped: bool) -> None:
        """Evaluate when due, record the row, checkpoint, and report the epoch."""
        done = row["epoch"]
        metrics: dict[str, Any] = {}
        if done % self.cfg.eval_interval == 0 or done == self.cfg.epochs or stopped:
            metrics = run_evaluation(
                self.task,
                self.model,
                self.val_set,
                self.recipe,
                self.run_dir.eval_dir,
                self.device,
                self.progress,
            )
            self.last_metrics = scalar_metrics(metrics)
        row.update(scalar_metrics(metrics))
        self.history.append(row)
        improved = self._update_best(metrics, done)
        self._checkpoint(done, improved)
        self.progress.end_epoch(self._summary(row, improved))
        if stopped:
            self.progress.log(
                f"train.max_time_minutes={self.cfg.max_time_minutes} reached: "
                f"stopped in epoch {done} after step {self.step}"
            )

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
            epochs_completed=len(self.history),
            global_step=self.step,
            best_metric=self.best,
            best_epoch=self.best_epoch,
            metrics=self.last_metrics,
            stopped_early=stopped,
            bad_images=bad_images,
            weights_digest=digests[0],
        )

    def _wrap(self, model: nn.Module) -> nn.Module:
        """The module the training steps call: DDP across processes, compiled when the recipe asks."""
        if self.info.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(
                model, device_ids=device_ids, find_unused_parameters=self.task.find_unused_parameters
            )
        return torch.compile(model) if self.cfg.compile else model

    def _train_epoch(self, model: nn.Module, loader: DataLoader, epoch: int) -> tuple[dict[str, Any], bool]:
        """One pass over the loader. Returns the epoch's row and whether the time limit stopped it."""
        model.train()
        self.progress.begin_epoch(epoch)
        started = time.monotonic()
        limit = self.cfg.max_time_minutes * 60 if self.cfg.max_time_minutes is not None else math.inf
        totals: torch.Tensor | None = None
        names: list[str] = []
        count, stopped, lr = 0, False, self.optimizer.param_groups[0]["lr"]
        for iteration, batch in enumerate(batches(loader), 1):
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
            totals = reduced[:-1] if totals is None else totals + reduced[:-1]
            count += 1
            self.progress.step(iteration, value, lr)
            if reduced[-1] > 0:
                stopped = True
                break
        assert totals is not None
        means = (totals / count).tolist()
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": means[0]}
        row.update({f"train_{name}": v for name, v in zip(names, means[1:], strict=True)})
        row.update({"lr": lr, "time": round(time.monotonic() - started, 3), "step": self.step})
        return row, stopped

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
        done = len(self.history)
        kept = (
            f"the last good checkpoint ({self.run_dir.last_weights}, epoch {done}) is unchanged"
            if done
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
        self.best, self.best_epoch = float(value), epoch
        return True

    def _checkpoint(self, epoch: int, improved: bool) -> None:
        """Save weights (last, and best if improved), the training state and the logs; rank 0 writes."""
        rng = gather_objects(capture_rng(self.device))
        if not self.info.is_main:
            return
        meta = {"task": self.recipe.task, "recipe": self.recipe.name, "epoch": str(epoch)}
        meta.update(self.task.weights_metadata(self.model))
        save_weights(self.model, self.run_dir.last_weights, meta)
        if improved:
            save_weights(
                self.model, self.run_dir.best_weights, {**meta, self.task.primary_metric: str(self.best)}
            )
        save_state(
            self.run_dir.state,
            {
                "epoch": epoch,
                "global_step": self.step,
                "best_metric": self.best,
                "best_epoch": self.best_epoch,
                "history": self.history,
                "metrics": self.last_metrics,
                "world_size": self.info.world_size,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "rng": rng,
            },
        )
        self.run_dir.write_history(self.history, self.task.primary_metric)

    def _describe(self, train_size: int, steps: int, start_epoch: int) -> None:
        cfg, recipe = self.cfg, self.recipe
        root = Path(recipe.data.root).resolve() if recipe.data.root else "-"
        precision = str(self.dtype).removeprefix("torch.") if self.dtype is not None else "fp32"
        action = f"resuming at epoch {start_epoch + 1}" if start_epoch else "starting"
        self._log(
            f"{action}: run {self.run_dir.path}  task {recipe.task}  model {recipe.model.name or '-'}  "
            f"data {root}  {train_size} train / {len(self.val_set)} val samples  "
            f"{self.info.world_size} process(es) × batch {cfg.batch_size}  {steps} steps/epoch  "
            f"device {self.device}  precision {precision}"
        )
        if start_epoch >= cfg.epochs:
            self._log(f"the run already finished {start_epoch} epochs; raise train.epochs to train longer")

    def _summary(self, row: dict[str, Any], improved: bool) -> str:
        parts = [
            f"epoch {row['epoch']}/{self.cfg.epochs}",
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
