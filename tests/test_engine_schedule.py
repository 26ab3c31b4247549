"""The per-iteration learning-rate schedule (over epochs or exactly `train.max_steps`) and the parameter groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hrformer_core.engine.optim import build_optimizer, build_scheduler, lr_at, weight_decay_groups
from hrformer_core.engine.recipes import Recipe
from hrformer_core.engine.schema import ScheduleSection, TrainSection

STEPS = 10  # per epoch


def schedule(**kwargs: object) -> ScheduleSection:
    return ScheduleSection(**kwargs)  # type: ignore[arg-type]


def test_linear_warmup_from_ratio_as_mmcv() -> None:
    s = schedule(type="constant", warmup_iters=500, warmup_ratio=0.001)
    assert lr_at(0, s, 5e-4, STEPS, 210 * STEPS) == pytest.approx(5e-4 * 0.001)
    assert lr_at(250, s, 5e-4, STEPS, 210 * STEPS) == pytest.approx(5e-4 * (0.001 + 0.999 * 0.5))
    assert lr_at(499, s, 5e-4, STEPS, 210 * STEPS) == pytest.approx(5e-4 * (0.001 + 0.999 * 499 / 500))
    assert lr_at(500, s, 5e-4, STEPS, 210 * STEPS) == 5e-4
    epochs = schedule(type="constant", warmup_epochs=1.5)  # 15 steps
    assert lr_at(15, epochs, 1.0, STEPS, 4 * STEPS) == 1.0 and lr_at(14, epochs, 1.0, STEPS, 4 * STEPS) < 1.0


def test_step_decay_at_milestone_epochs() -> None:
    s = schedule(type="step", milestones=[170, 200], gamma=0.1)  # the pose recipe
    assert lr_at(170 * STEPS - 1, s, 5e-4, STEPS, 210 * STEPS) == 5e-4
    assert lr_at(170 * STEPS, s, 5e-4, STEPS, 210 * STEPS) == pytest.approx(5e-5)
    assert lr_at(200 * STEPS, s, 5e-4, STEPS, 210 * STEPS) == pytest.approx(5e-6)
    assert lr_at(210 * STEPS - 1, s, 5e-4, STEPS, 210 * STEPS) == pytest.approx(5e-6)


def test_poly_and_cosine_decay_to_min_lr() -> None:
    total = 8 * STEPS
    poly = schedule(type="poly", power=0.9, min_lr=1e-4)
    assert lr_at(0, poly, 1e-2, STEPS, total) == pytest.approx(1e-2)
    assert lr_at(total // 2, poly, 1e-2, STEPS, total) == pytest.approx((1e-2 - 1e-4) * 0.5**0.9 + 1e-4)
    assert lr_at(total, poly, 1e-2, STEPS, total) == pytest.approx(1e-4)
    cosine = schedule(type="cosine", min_lr=1e-5)
    assert lr_at(total // 4, cosine, 1e-3, STEPS, total) == pytest.approx(
        1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi / 4))
    )
    assert lr_at(total // 2, cosine, 1e-3, STEPS, total) == pytest.approx((1e-3 + 1e-5) / 2)
    assert lr_at(total, cosine, 1e-3, STEPS, total) == pytest.approx(1e-5)


def test_scheduler_follows_lr_at_for_every_group_and_resumes_exactly() -> None:
    train = TrainSection(epochs=3)
    train.optimizer.lr = 2e-3
    train.schedule = schedule(type="cosine", warmup_iters=4, min_lr=1e-5)
    recipe = Recipe(task="toy", train=train)
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    groups = weight_decay_groups(model, 0.05, lambda name, p: p.ndim == 1)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    assert [len(g["params"]) for g in groups] == [1, 3]  # linear weight | linear bias, bn weight, bn bias
    optimizer = build_optimizer(groups, recipe)
    scheduler = build_scheduler(optimizer, recipe, STEPS)
    seen = []
    for step in range(3 * STEPS):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
        if step == 11:
            saved = (optimizer.state_dict(), scheduler.state_dict())
    expected = [lr_at(step, train.schedule, 2e-3, STEPS, 3 * STEPS) for step in range(3 * STEPS)]
    assert [lrs[0] for lrs in seen] == pytest.approx(expected, rel=1e-12)
    assert all(lrs[0] == lrs[1] for lrs in seen)

    fresh = build_optimizer(weight_decay_groups(model, 0.05, lambda name, p: p.ndim == 1), recipe)
    resumed = build_scheduler(fresh, recipe, STEPS)
    fresh.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    assert fresh.param_groups[0]["lr"] == pytest.approx(expected[12], rel=1e-12)
    fresh.step()
    resumed.step()
    assert fresh.param_groups[0]["lr"] == pytest.approx(expected[13], rel=1e-12)
    assert isinstance(fresh, torch.optim.AdamW) and fresh.param_groups[0]["betas"] == (0.9, 0.999)


def test_max_steps_lays_the_schedule_over_exactly_those_steps() -> None:
    """25 steps with 10 per epoch: warm-up from warmup_ratio × lr, cosine to min_lr at step 25, not at 10 or 30."""
    train = TrainSection(epochs=1, max_steps=25)
    train.optimizer.lr = 1e-2
    train.schedule = schedule(type="cosine", warmup_iters=5, warmup_ratio=0.1, min_lr=1e-4)
    optimizer = build_optimizer([{"params": [nn.Parameter(torch.zeros(2))]}], Recipe(task="toy", train=train))
    scheduler = build_scheduler(optimizer, Recipe(task="toy", train=train), STEPS)
    seen = []
    for _ in range(26):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()

    def by_hand(step: int) -> float:
        cosine = 1e-4 + (1e-2 - 1e-4) * (1 + math.cos(math.pi * step / 25)) / 2
        return cosine * (0.1 + 0.9 * step / 5) if step < 5 else cosine

    for step in (0, 2, 4, 5, 12, 24, 25):
        assert seen[step] == pytest.approx(by_hand(step), rel=1e-12), step
    assert seen[0] == pytest.approx(1e-3) and seen[25] == pytest.approx(1e-4)
    # Step decay with max_steps: milestones stay epochs of the training set's steps.
    steps = schedule(type="step", milestones=[2], gamma=0.5)
    assert lr_at(19, steps, 1.0, STEPS, 25) == 1.0 and lr_at(20, steps, 1.0, STEPS, 25) == 0.5
