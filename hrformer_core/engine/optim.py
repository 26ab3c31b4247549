"""AdamW with task parameter groups, and the per-iteration learning-rate schedule.

The schedule is one pure function of the global step, `lr_at`, driven by a LambdaLR; the scheduler's only
state is the step counter, so a resumed run follows exactly the same learning rates.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from hrformer_core.engine.recipes import Recipe
    from hrformer_core.engine.schema import ScheduleSection, TrainSection


def weight_decay_groups(
    model: nn.Module, weight_decay: float, no_decay: Callable[[str, nn.Parameter], bool] | None = None
) -> list[dict[str, Any]]:
    """Two groups: decayed parameters, and those for which `no_decay(name, param)` holds (weight_decay 0).

    Pose, for example, exempts only `relative_position_bias_table` (the reference recipe decays norms and
    biases); classification exempts 1-D parameters and biases.
    """
    decay, exempt = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (exempt if no_decay is not None and no_decay(name, param) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if exempt:
        groups.append({"params": exempt, "weight_decay": 0.0})
    return groups


def lr_scale(train: TrainSection, world_size: int) -> float:
    """The factor on lr and min_lr: the global batch over `optimizer.lr_batch` (1 when that is unset)."""
    per = train.optimizer.lr_batch
    return 1.0 if per is None else train.batch_size * world_size / per


def build_optimizer(param_groups: list[dict[str, Any]], recipe: Recipe, scale: float = 1.0) -> torch.optim.AdamW:
    opt = recipe.train.optimizer
    # The fused kernel (CPU and CUDA) updates all parameters in one pass instead of a few ops per tensor.
    return torch.optim.AdamW(
        param_groups, lr=opt.lr * scale, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay, fused=True
    )


def run_steps(train: TrainSection, steps_per_epoch: int) -> int:
    """The run's length in optimiser steps: `train.max_steps` when set, else `train.epochs` full epochs."""
    return train.max_steps if train.max_steps is not None else train.epochs * steps_per_epoch


def warmup_steps(schedule: ScheduleSection, steps_per_epoch: int) -> int:
    return schedule.warmup_iters + round(schedule.warmup_epochs * steps_per_epoch)


def lr_at(step: int, schedule: ScheduleSection, base_lr: float, steps_per_epoch: int, total_steps: int) -> float:
    """Learning rate for optimiser step `step` (0-based) of a run of `total_steps` steps.

    The decay is `schedule.type` over exactly the run's steps (step: ×gamma at each milestone epoch of
    `steps_per_epoch` steps; poly and cosine from base_lr to min_lr at step `total_steps`). During the first
    warmup steps it is multiplied by a factor rising linearly from `warmup_ratio` to 1 (mmcv's linear warmup),
    or, with `schedule.warmup == "to_base"`, it rises linearly from `warmup_ratio` x base_lr to base_lr (timm's).
    """
    progress = min(step / max(1, total_steps), 1.0)
    if schedule.type == "step":
        drops = sum(step >= m * steps_per_epoch for m in schedule.milestones)
        lr = base_lr * schedule.gamma**drops
    elif schedule.type == "poly":
        lr = (base_lr - schedule.min_lr) * (1.0 - progress) ** schedule.power + schedule.min_lr
    elif schedule.type == "cosine":
        lr = schedule.min_lr + (base_lr - schedule.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        lr = base_lr
    warmup = warmup_steps(schedule, steps_per_epoch)
    if step < warmup:
        rise = schedule.warmup_ratio + (1.0 - schedule.warmup_ratio) * step / warmup
        lr = base_lr * rise if schedule.warmup == "to_base" else lr * rise
    return lr


def build_scheduler(
    optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int, scale: float = 1.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepping once per optimiser step, following `lr_at` over the run's steps for every group
    (lr and min_lr times `scale`, see `lr_scale`)."""
    base_lr = recipe.train.optimizer.lr * scale
    schedule = dataclasses.replace(recipe.train.schedule, min_lr=recipe.train.schedule.min_lr * scale)
    total = run_steps(recipe.train, steps_per_epoch)

    def factor(step: int) -> float:
        return lr_at(step, schedule, base_lr, steps_per_epoch, total) / base_lr if base_lr > 0 else 0.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
