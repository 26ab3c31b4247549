"""Evaluation on any number of ranks: each predicts its shard, rank 0 computes the metrics on all of it.

Predictions travel with their dataset index, so rank 0 can put them back in dataset order and drop the
duplicates that DistributedSampler adds to even out the shards; the metrics are then exactly those of a
single-process evaluation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from hrformer_core.engine.distributed import (
    broadcast_buffers,
    broadcast_object,
    cleanup,
    gather_objects,
    init_distributed,
    revert_sync_batchnorm,
    world_size,
)
from hrformer_core.engine.distributed import rank as current_rank
from hrformer_core.engine.progress import TrainProgress
from hrformer_core.errors import TrainingError, UsageError
from hrformer_core.models.weights import resolve_weights
from hrformer_core.tasks import Task, get_task
from hrformer_core.utils.io import unique_dir, write_json
from hrformer_core.utils.threads import make_fork_safe

if TYPE_CHECKING:
    from hrformer_core.engine.recipes import Recipe


def move_to(batch: Any, device: torch.device) -> Any:
    """`batch` with every tensor (inside dicts, lists and tuples) moved to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=device.type == "cuda")
    if isinstance(batch, Mapping):
        return {key: move_to(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to(value, device) for value in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(move_to(value, device) for value in batch)
    return batch


def run_evaluation(
    task: Task,
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    recipe: Recipe,
    out_dir: Path,
    device: torch.device,
    progress: TrainProgress | None = None,
) -> dict[str, Any]:
    """The task's metrics for `model` (unwrapped, not DDP) on `dataset`, returned on every rank.

    Call it on all ranks together. Rank 0's buffers are copied to the others first, so every shard is
    predicted by the same model.
    """
    broadcast_buffers(model)
    sampler = DistributedSampler(dataset, num_replicas=world_size(), rank=current_rank(), shuffle=False)
    indices = list(sampler)
    batch_size = recipe.eval.batch_size
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        num_workers=recipe.train.workers,
        collate_fn=task.collate,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(0),
    )
    was_training = model.training
    model.eval()
    predictions: list[tuple[int, Any]] = []
    bar = progress.begin_eval(len(loader)) if progress is not None else None
    try:
        with torch.no_grad():
            for number, batch in enumerate(loader):
                batch_indices = indices[number * batch_size : (number + 1) * batch_size]
                outputs = task.predict_batch(model, move_to(batch, device))
                if len(outputs) != len(batch_indices):
                    raise TrainingError(
                        f"task {task.name}: predict_batch returned {len(outputs)} predictions "
                        f"for a batch of {len(batch_indices)} samples (expected one per sample)"
                    )
                predictions.extend(zip(batch_indices, outputs, strict=True))
                if progress is not None:
                    progress.eval_step(bar)
    finally:
        model.train(was_training)
        if progress is not None:
            progress.end_eval(bar)
    shards = gather_objects(predictions)
    metrics = None
    if current_rank() == 0:
        ordered = dict(item for shard in shards for item in shard)
        metrics = task.compute_metrics([ordered[i] for i in range(len(dataset))], dataset, out_dir)
        if task.primary_metric not in metrics:
            raise TrainingError(
                f"task {task.name}: compute_metrics returned no '{task.primary_metric}' "
                f"(got {', '.join(metrics) or 'nothing'})"
            )
    return broadcast_object(metrics)


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite-or-not numeric entries of a metrics dict, as floats (for tables, CSV and plots)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(float(value))
    }


def evaluate(
    recipe: Recipe,
    weights_path: str | os.PathLike,
    *,
    out_dir: str | os.PathLike | None = None,
    project: str | os.PathLike = "runs",
    device: str | None = None,
) -> dict[str, Any]:
    """Evaluate weights (any `--weights` form) on the recipe's validation set (on all ranks under torchrun).

    The model is the one the weights describe (an official checkpoint without position bias evaluates as
    it is); the recipe gives the data and the evaluation settings, and a one-line note says where its model
    settings differ. Writes `metrics.json` and `recipe.yaml` (and whatever the task writes) to `out_dir`,
    by default a new folder `project/<task>/<name>-eval`. Returns the metrics on every rank.
    """
    make_fork_safe()
    info = init_distributed(device)
    try:
        task = get_task(recipe.task)
        task.configure(recipe)
        weights = resolve_weights(weights_path)
        if weights.task != task.name:
            raise UsageError(
                f"--weights {weights_path}: a {weights.task} model, but the recipe {recipe.name} is for {task.name}"
            )
        model = revert_sync_batchnorm(task.model_from_weights(weights))
        if info.is_main:
            task.check_recipe_model(recipe, model, str(weights_path))
        model.to(info.device)
        dataset = task.build_val_dataset(recipe)
        folder = None
        if info.is_main:
            folder = (
                Path(out_dir)
                if out_dir is not None
                else unique_dir(Path(project) / recipe.task, f"{recipe.name}-eval")
            )
            folder.mkdir(parents=True, exist_ok=True)
        folder = Path(broadcast_object(str(folder)))
        with TrainProgress(info.is_main, 1, 1, 1, info.device) as progress:
            metrics = run_evaluation(task, model, dataset, recipe, folder, info.device, progress)
        if info.is_main:
            recipe.save(folder / "recipe.yaml")
            write_json(folder / "metrics.json", {"weights": str(weights_path), "metrics": metrics})
        return metrics
    finally:
        if info.owns_group:
            cleanup()
