"""Evaluation on any number of ranks: each predicts its shard, rank 0 computes the metrics on all of it.

Predictions travel with their dataset index, so rank 0 can put them back in dataset order and drop the
duplicates that DistributedSampler adds to even out the shards; the metrics are then exactly those of a
single-process evaluation. Samples of images the dataset could not read (its `bad_images`, merged over the
ranks) are left out when the dataset names them (`unreadable_indices`): nothing is predicted for them, and
`evaluate` reports which they were.

Per-class results: a task's metrics may hold rows (a list of dicts, e.g. one per class) under any key and
declare how to show them under `TABLES_KEY` (built with `table_spec`); `metric_tables` turns the metrics
into display-ready tables (the lowest and highest rows by one column when there are many), which
`hrformer eval` and `hrformer train` print after the summary. The rows stay in the metrics (metrics.json).
Eval options that `hrformer eval` has flags for (`EVAL_FLAGS`) set the eval-schema key the schema's
`flag_keys` names (`--flip` is pose's `eval.flip_test`), see `eval_flag_overrides`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
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
from hrformer_core.engine.loaders import batches, worker_count
from hrformer_core.engine.progress import TrainProgress
from hrformer_core.engine.rundir import discard_if_unused
from hrformer_core.engine.schema import field_types, strip_optional, unknown_key_message
from hrformer_core.errors import TrainingError, UsageError
from hrformer_core.models.weights import resolve_weights
from hrformer_core.tasks import Task, get_task
from hrformer_core.utils.console import console
from hrformer_core.utils.io import unique_dir, write_json
from hrformer_core.utils.threads import make_fork_safe

if TYPE_CHECKING:
    from hrformer_core.engine.recipes import Recipe

SKIPPED_NAMED = 5  # the skipped images named in the one-line warning (metrics.json lists them all)
TABLES_KEY = "tables"  # metrics key: the table_spec of each list of rows to show
SHOWN_ROWS = 40  # tables up to this long are shown whole ...
RANKED_ROWS = 10  # ... longer ones as this many lowest and highest rows by the spec's rank_by column
EVAL_FLAGS = ("ms", "flip")  # `hrformer eval --ms/--flip`: eval keys of the same name unless flag_keys says


@dataclass
class MetricTable:
    """A table ready to print: formatted cells, and where the lowest rows end when only those and the highest
    are shown (`gap_after`), with a note saying so."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    gap_after: int | None = None
    note: str = ""


@dataclass
class EvalResult:
    """One evaluation: the task's metrics, where its files are, and the images it had to leave out."""

    metrics: dict[str, Any]
    folder: Path
    skipped_images: dict[str, str] = field(default_factory=dict)  # image -> why it could not be used

    @property
    def tables(self) -> list[MetricTable]:
        return metric_tables(self.metrics)


def table_spec(title: str, rows_key: str, columns: Sequence[str], rank_by: str | None = None) -> dict[str, Any]:
    """How to show the rows at `metrics[rows_key]` (dicts with at least `columns`); goes in `metrics[TABLES_KEY]`.

    `rank_by`: the numeric column that picks the lowest and highest rows of a table too long to show whole.
    """
    if rank_by is not None and rank_by not in columns:
        raise ValueError(f"rank_by {rank_by!r} is not one of the columns {list(columns)}")
    return {"title": title, "rows": rows_key, "columns": list(columns), "rank_by": rank_by}


def metric_tables(metrics: Mapping[str, Any]) -> list[MetricTable]:
    """The tables `metrics[TABLES_KEY]` declares, at most SHOWN_ROWS rows each (or the RANKED_ROWS lowest and
    highest by `rank_by`, rows without a value left out, with a note)."""
    tables = []
    for spec in metrics.get(TABLES_KEY, []):
        rows = metrics.get(spec["rows"])
        if not isinstance(rows, list) or any(not isinstance(row, Mapping) for row in rows):
            raise TrainingError(f"metrics table {spec['title']!r}: metrics[{spec['rows']!r}] is not a list of rows")
        columns, rank_by, gap, note = spec["columns"], spec.get("rank_by"), None, ""
        if len(rows) > SHOWN_ROWS and rank_by is not None:
            valued = sorted((row for row in rows if _is_number(row.get(rank_by))), key=lambda row: row[rank_by])
            if len(valued) > 2 * RANKED_ROWS:
                shown, gap = valued[:RANKED_ROWS] + valued[-RANKED_ROWS:], RANKED_ROWS
                note = f"the {RANKED_ROWS} lowest and {RANKED_ROWS} highest {rank_by} of {len(rows)} rows"
            else:
                shown, note = valued, f"the {len(valued)} of {len(rows)} rows with a value, lowest {rank_by} first"
            without = len(rows) - len(valued)
            note += f" ({without} without one left out)" if without and gap else ""
            note += f"; all rows are under '{spec['rows']}' in the metrics"
            rows = shown
        cells = [[_cell(row.get(column)) for column in columns] for row in rows]
        tables.append(MetricTable(spec["title"], list(columns), cells, gap, note))
    return tables


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(float(value))


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def eval_flag_overrides(recipe: Recipe, flags: Mapping[str, bool | None]) -> list[str]:
    """The `eval.KEY=true|false` overrides that `hrformer eval`'s flags (EVAL_FLAGS; None: not given) stand for.

    A flag sets the eval-schema key of its own name unless the schema's `flag_keys` maps it to another;
    a schema without that key is refused with the recipe's one-line unknown-key message, naming the flag.
    """
    schema = type(recipe.eval)
    hints = field_types(schema)
    overrides = []
    for flag, value in flags.items():
        if value is None:
            continue
        key = schema.flag_keys.get(flag, flag)
        if key not in hints:
            message = unknown_key_message(f"eval.{key}", {"eval": schema})
            raise UsageError(f"--{flag}: the {recipe.task} task has no such evaluation option ({message})")
        if strip_optional(hints[key])[0] is not bool:
            raise UsageError(f"--{flag}: eval.{key} of the {recipe.task} task is not a true/false option")
        overrides.append(f"eval.{key}={'true' if value else 'false'}")
    return overrides


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

    Call it on all ranks together (see `evaluate_dataset`, which also says which images were left out).
    """
    return evaluate_dataset(task, model, dataset, recipe, out_dir, device, progress).metrics


def evaluate_dataset(
    task: Task,
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    recipe: Recipe,
    out_dir: Path,
    device: torch.device,
    progress: TrainProgress | None = None,
) -> EvalResult:
    """Metrics and skipped images for `model` (unwrapped, not DDP) on `dataset`, returned on every rank.

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
        num_workers=worker_count(recipe.train.workers),
        collate_fn=task.collate,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(0),
    )
    was_training = model.training
    model.eval()
    predictions: list[tuple[int, Any]] = []
    record_skipped = getattr(dataset, "record_skipped", None)
    bar = progress.begin_eval(len(loader)) if progress is not None else None
    try:
        with torch.no_grad():
            for number, batch in enumerate(batches(loader)):
                if record_skipped is not None:  # images that DataLoader workers could not read
                    record_skipped(batch)
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
    skipped = skipped_images(dataset)
    metrics = None
    if current_rank() == 0:
        ordered = dict(item for shard in shards for item in shard)
        left_out = dataset.unreadable_indices(skipped) if hasattr(dataset, "unreadable_indices") else set()
        kept = [ordered[i] for i in range(len(dataset)) if i not in left_out]
        metrics = task.compute_metrics(kept, dataset, out_dir)
        if task.primary_metric not in metrics:
            raise TrainingError(
                f"task {task.name}: compute_metrics returned no '{task.primary_metric}' "
                f"(got {', '.join(metrics) or 'nothing'})"
            )
    return EvalResult(broadcast_object(metrics), out_dir, skipped)


def skipped_images(dataset: Any) -> dict[str, str]:
    """The images the dataset's `bad_images` names (path -> reason, or a collection of names), over all ranks."""
    bad = getattr(dataset, "bad_images", None)
    if isinstance(bad, Mapping):
        local = {str(name): str(reason) for name, reason in bad.items()}
    elif isinstance(bad, Collection) and not isinstance(bad, str):
        local = {str(name): "unreadable" for name in bad}
    else:
        local = {}
    merged: dict[str, str] = {}
    for shard in gather_objects(local):
        merged.update(shard)
    return dict(sorted(merged.items()))


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
) -> EvalResult:
    """Evaluate weights (any `--weights` form) on the recipe's validation set (on all ranks under torchrun).

    The model is the one the weights describe (an official checkpoint without position bias evaluates as
    it is); the recipe gives the data and the evaluation settings, and a one-line note says where its model
    settings differ. Writes `metrics.json` (with the images left out) and `recipe.yaml` (and whatever the
    task writes) to `out_dir`, by default a new folder `project/<task>/<name>-eval`; a new folder is removed
    again when the evaluation fails before writing to it. Returns the result on every rank.
    """
    make_fork_safe()
    info = init_distributed(device)
    try:
        task = get_task(recipe.task)
        task.configure(recipe)
        # `--weights last`: the newest run of this recipe.
        weights = resolve_weights(weights_path, project, f"{recipe.task}/{recipe.name}*")
        if weights.task != task.name:
            raise UsageError(
                f"--weights {weights_path}: a {weights.task} model, but the recipe {recipe.name} is for {task.name}"
            )
        model = revert_sync_batchnorm(task.model_from_weights(weights))
        if info.is_main:
            task.check_recipe_model(recipe, model, str(weights_path))
        model.to(info.device)
        dataset = task.build_val_dataset(recipe)
        folder, created = None, False
        if info.is_main:
            if out_dir is None:
                folder, created = unique_dir(Path(project) / recipe.task, f"{recipe.name}-eval"), True
            else:
                folder, created = Path(out_dir), not Path(out_dir).exists()
                folder.mkdir(parents=True, exist_ok=True)
        folder = Path(broadcast_object(str(folder)))
        try:
            with TrainProgress(info.is_main, 1, 1, 1, info.device) as progress:
                result = evaluate_dataset(task, model, dataset, recipe, folder, info.device, progress)
        except BaseException:
            if info.is_main and created:
                discard_if_unused(folder)
            raise
        if info.is_main:
            recipe.save(folder / "recipe.yaml")
            skipped = {"count": len(result.skipped_images), "images": result.skipped_images}
            write_json(
                folder / "metrics.json",
                {"weights": str(weights_path), "metrics": result.metrics, "skipped_images": skipped},
            )
            if result.skipped_images:
                _warn_skipped(result.skipped_images)
        return result
    finally:
        if info.owns_group:
            cleanup()


def _warn_skipped(skipped: dict[str, str]) -> None:
    named = "; ".join(f"{path} ({why})" for path, why in list(skipped.items())[:SKIPPED_NAMED])
    more = f"; and {len(skipped) - SKIPPED_NAMED} more" if len(skipped) > SKIPPED_NAMED else ""
    console.print(
        f"warning: {len(skipped)} image(s) could not be read and were left out of the evaluation "
        f"(nothing predicted for them; all listed in metrics.json): {named}{more}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
