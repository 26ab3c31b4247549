"""What a study measures of an arm besides its metric: size, MACs and latency of its model, and (for
`--budget-minutes`) the time of one of its training steps.

Counts are cached per process by the model's configuration, so studies that share an arm (HRFormer-T is in
three of them) count it once.
"""

from __future__ import annotations

import json
import statistics
import time
from contextlib import nullcontext
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from ..engine.evaluation import move_to
from ..engine.loaders import batches, worker_count
from ..engine.optim import build_optimizer
from ..engine.recipes import Recipe
from ..engine.sampling import EpochBatches, SeededBatches, seed_everything
from ..engine.trainer import amp_dtype
from ..errors import DataError
from ..models import ModelConfig, build_model
from ..profiling import count_macs, count_params, measure_latency, paper_convention
from ..profiling.reference import PAPER_FIGURES, PaperFigure
from ..tasks import get_task

LATENCY_WARMUP, LATENCY_RUNS = 3, 10
CALIBRATION_WARMUP, CALIBRATION_STEPS = 2, 5  # untimed steps (workers starting, allocator), then timed ones

_counts: dict[tuple[str, tuple[int, int], str], float] = {}


def _key(config: ModelConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


def _cached(config: ModelConfig, input_hw: tuple[int, int], what: str) -> float:
    key = (_key(config), input_hw, what)
    if key not in _counts:
        if what == "params":
            with torch.device("meta"):
                _counts[key] = float(count_params(build_model(config))["total"])
        else:
            _counts[key] = count_macs(config, input_hw, what)
    return _counts[key]


def paper_figure(config: ModelConfig, input_hw: tuple[int, int]) -> PaperFigure | None:
    """The paper's parameters/FLOPs row for this architecture at this input, whatever the model's name
    (`hrformer-b` with windows 15 is the paper's `hrformer-b-w15`); the drop-path rate does not matter."""
    wanted = config.replace(name="", drop_path_rate=0.0)
    for figure in PAPER_FIGURES:
        if figure.task != config.task or figure.input_hw != tuple(input_hw):
            continue
        if figure.config().replace(name="", drop_path_rate=0.0) == wanted:
            return figure
    return None


def profile_config(
    config: ModelConfig, input_hw: tuple[int, int], latency_device: str | None = "cpu"
) -> dict[str, Any]:
    """Parameters, GMACs (the paper's convention for the head, and torch's) and, unless `latency_device` is
    None, the median batch-1 latency of a randomly initialised model, beside the paper's figure if any."""
    input_hw = (int(input_hw[0]), int(input_hw[1]))
    convention = paper_convention(config.task)
    result: dict[str, Any] = {
        "model": config.name,
        "task": config.task,
        "input_size": list(input_hw),
        "params": int(_cached(config, input_hw, "params")),
        "convention": convention,
        "gmacs": _cached(config, input_hw, convention) / 1e9,
        "gmacs_torch": _cached(config, input_hw, "torch") / 1e9,
        "latency_ms": None,
        "paper": None,
    }
    figure = paper_figure(config, input_hw)
    if figure is not None:
        result["paper"] = {
            "params_m": figure.params_m, "gmacs": figure.gmacs, "source": figure.source, "note": figure.note,
        }  # fmt: skip
    if latency_device is not None:
        model = build_model(config)
        latency = measure_latency(model, (1, 3, *input_hw), latency_device, LATENCY_WARMUP, LATENCY_RUNS)
        result["latency_ms"] = 1e3 * latency["median_s"]
    return result


def measure_step_seconds(recipe: Recipe, device: torch.device) -> float:
    """Median seconds of one training step of `recipe` (batches drawn and augmented as the trainer draws them,
    data loading included), after `CALIBRATION_WARMUP` untimed steps; on one process."""
    train = recipe.train
    task = get_task(recipe.task)
    task.configure(recipe)
    seed_everything(train.seed)
    model = task.build_model(recipe).to(device)
    if train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    dataset = task.build_train_dataset(recipe)
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=train.seed)
    batcher = EpochBatches(sampler, train.batch_size, train.seed, 0)
    loader = DataLoader(
        SeededBatches(dataset),
        batch_sampler=batcher,
        num_workers=worker_count(train.workers),
        collate_fn=task.collate,
        worker_init_fn=getattr(dataset, "worker_init_fn", None),
        generator=torch.Generator(),
    )
    if batcher.steps_per_epoch == 0:
        raise DataError(
            f"data: the training set has {len(sampler)} samples, fewer than train.batch_size={train.batch_size}"
        )
    optimizer = build_optimizer(task.param_groups(model, recipe), recipe)
    dtype = amp_dtype(train.amp, device)
    seconds: list[float] = []
    epoch = 0
    while len(seconds) < CALIBRATION_WARMUP + CALIBRATION_STEPS:
        batcher.start(epoch)
        tick = time.monotonic()
        for batch in batches(loader):
            with torch.autocast(device.type, dtype=dtype) if dtype else nullcontext():
                loss, _ = task.loss(model, move_to(batch, device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            now = time.monotonic()
            seconds.append(now - tick)
            tick = now
            if len(seconds) == CALIBRATION_WARMUP + CALIBRATION_STEPS:
                break
        epoch += 1
    return statistics.median(seconds[CALIBRATION_WARMUP:])
