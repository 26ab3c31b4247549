"""Run, eval and profile results read back into one record each, the rows `hrformer report` compares.

A run folder (recipe.yaml with summary.json or metrics.jsonl, see `engine.rundir`), an eval folder (recipe.yaml
with metrics.json, see `engine.evaluation.evaluate`) and an `hrformer profile --json` file are understood;
anything else is skipped with the reason. Parameters and GMACs (the paper's counting convention for the model's
head, at the input size it was trained at) are counted from the model config saved with the weights, else from
the recipe, on the meta device.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError, safe_open

from ..engine.steplog import read_steps_csv
from ..errors import HRFormerError
from ..models import ModelConfig, build_model, list_models, model_config
from ..models.weights import config_of, input_size_of
from ..profiling import count_macs, count_params, paper_convention

MAX_CURVE_POINTS = 1000  # loss curves longer than this are averaged into this many points (JSON and plots)
LATENCY_METRIC = "latency_ms"  # a profile record's metric: median batch-1 forward time
# The ModelConfig fields a variant's description lists when they differ from the named model's defaults.
VARIANT_FIELDS = (
    "channels", "num_heads", "num_modules", "num_blocks", "window_sizes", "mlp_ratio", "block", "ffn_dw",
    "shifted_windows", "rel_pos_bias",
)  # fmt: skip


class NotAResult(Exception):
    """A folder or file given to the report that holds no run, eval or profile result (the reason)."""


@dataclass
class SkippedFolder:
    path: str
    reason: str


@dataclass
class RunRecord:
    """One compared result: what was trained or measured, how big it is, and how well it did."""

    name: str  # unique within a report: the folder name (a parent prefixed where two are alike)
    path: str  # the folder (or profile JSON file) it was read from
    kind: str  # "run", "eval" or "profile"
    task: str
    recipe: str
    model: str | None = None
    variant: str = ""  # the model's options that differ from its named defaults ("" = as named)
    input_size: list[int] | None = None  # (H, W) the model ran at, which its GMACs are counted for
    params: int | None = None
    gmacs: float | None = None
    gmacs_convention: str | None = None
    metric: str | None = None  # the task's primary metric
    value: float | None = None  # its best value (runs) or the evaluated value (eval folders)
    best_epoch: int | None = None
    best_step: int | None = None
    steps: int | None = None
    total_steps: int | None = None
    train_seconds: float | None = None  # optimiser steps only (data loading included, evaluations not)
    synthetic: bool = False
    note: str = ""
    metrics: dict[str, float] = field(default_factory=dict)  # the last evaluation's numbers
    loss_curve: list[list[float]] = field(default_factory=list)  # [step, train loss]
    metric_curve: list[list[float]] = field(default_factory=list)  # [step, metric] at each evaluation
    model_config: dict[str, Any] | None = None
    recipe_values: dict[str, Any] = field(default_factory=dict, repr=False)  # the resolved recipe

    @property
    def model_label(self) -> str:
        """The model and, when it is not the named one, how it differs (the `--by model` key)."""
        base = self.model or "(unknown model)"
        return f"{base} ({self.variant})" if self.variant else base

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["recipe_values"]
        return data


def collect_records(paths: Iterable[str | os.PathLike]) -> tuple[list[RunRecord], list[SkippedFolder]]:
    """The records of every run/eval folder and profile JSON among `paths`, and those skipped with why."""
    records: list[RunRecord] = []
    skipped: list[SkippedFolder] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.resolve() in seen:
            skipped.append(SkippedFolder(str(path), "given twice (reported once)"))
            continue
        seen.add(path.resolve())
        try:
            records.extend(read_result(path))
        except NotAResult as reason:
            skipped.append(SkippedFolder(str(path), str(reason)))
    _make_names_unique(records)
    return records, skipped


def read_result(path: Path) -> list[RunRecord]:
    """The record(s) in one folder or profile JSON file; NotAResult says why there are none."""
    if not path.exists():
        raise NotAResult("no such file or folder")
    if path.is_file():
        return _profile_records(path)
    recipe_file = path / "recipe.yaml"
    has_run_files = (path / "summary.json").is_file() or (path / "metrics.jsonl").is_file()
    if not recipe_file.is_file():
        raise NotAResult("not a run or eval folder (no recipe.yaml)")
    if not has_run_files and not (path / "metrics.json").is_file():
        raise NotAResult("not a run or eval folder (recipe.yaml but no summary.json, metrics.jsonl or metrics.json)")
    recipe = _read_yaml(recipe_file)
    return [_run_record(path, recipe) if has_run_files else _eval_record(path, recipe)]


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise NotAResult(f"{path.name} is not readable YAML ({_first_line(exc)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("task"), str):
        raise NotAResult(f"{path.name} is not a recipe (no 'task' key)")
    return data


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotAResult(f"{path.name} is not readable JSON ({_first_line(exc)})") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise NotAResult(f"{path.name} line {number} is not JSON ({exc.msg})") from None
        if isinstance(row, dict) and _is_number(row.get("step")):
            rows.append(row)
    return rows


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))
    }


def _run_record(folder: Path, recipe: dict[str, Any]) -> RunRecord:
    summary = _read_json(folder / "summary.json") if (folder / "summary.json").is_file() else {}
    if not isinstance(summary, dict):
        raise NotAResult("summary.json is not a JSON object")
    rows = _read_jsonl(folder / "metrics.jsonl")
    best = summary.get("best") if isinstance(summary.get("best"), dict) else {}
    metric = best.get("metric") or _primary_metric(recipe["task"], rows[-1] if rows else {})
    curve = [[float(r["step"]), float(r[metric])] for r in rows if metric and _is_number(r.get(metric))]
    value, best_step = best.get("value"), best.get("step")
    if value is None and curve:  # no summary.json (or one without a best): the highest evaluation
        best_step, value = max(curve, key=lambda point: point[1])
    best_epoch = next((r.get("epoch") for r in rows if r.get("step") == best_step and metric in r), None)
    losses, seconds = _step_log(folder, rows)
    record = RunRecord(
        name=folder.name,
        path=str(folder),
        kind="run",
        task=recipe["task"],
        recipe=str(recipe.get("name") or folder.name),
        metric=metric,
        value=float(value) if _is_number(value) else None,
        best_epoch=best_epoch,
        best_step=int(best_step) if _is_number(best_step) else None,
        steps=summary.get("step", rows[-1]["step"] if rows else None),
        total_steps=summary.get("total_steps"),
        train_seconds=seconds,
        synthetic=bool(_lookup(recipe, "data.synthetic")),
        note=summary.get("note") or "",
        metrics=_numbers(summary.get("metrics") or (rows[-1] if rows else {})),
        loss_curve=losses,
        metric_curve=curve,
        recipe_values=recipe,
    )
    _add_model(record, _weights_config(folder / "weights"), recipe)
    return record


def _step_log(folder: Path, rows: Sequence[dict[str, Any]]) -> tuple[list[list[float]], float | None]:
    """The per-step loss curve (binned to MAX_CURVE_POINTS) and the summed step seconds, from steps.csv; without
    it, the history rows' mean losses and times."""
    if (folder / "steps.csv").is_file():
        try:
            log = read_steps_csv(folder / "steps.csv")
        except HRFormerError as exc:
            raise NotAResult(str(exc).removeprefix(f"{folder / 'steps.csv'}: ")) from None
        if len(log) and "train_loss" in log.columns:
            points = _binned(log.column("step"), log.column("train_loss"))
            return points, sum(log.column("seconds")) if "seconds" in log.columns else None
    points = [[float(r["step"]), float(r["train_loss"])] for r in rows if _is_number(r.get("train_loss"))]
    times = [float(r["time"]) for r in rows if _is_number(r.get("time"))]
    return points, sum(times) if times else None


def _binned(steps: Sequence[float], values: Sequence[float]) -> list[list[float]]:
    """(step, value) pairs, averaged over equal runs of steps when there are more than MAX_CURVE_POINTS."""
    size = max(1, math.ceil(len(steps) / MAX_CURVE_POINTS))
    return [
        [sum(steps[i : i + size]) / len(steps[i : i + size]), sum(values[i : i + size]) / len(values[i : i + size])]
        for i in range(0, len(steps), size)
    ]


def _eval_record(folder: Path, recipe: dict[str, Any]) -> RunRecord:
    data = _read_json(folder / "metrics.json")
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise NotAResult("metrics.json has no 'metrics' object (not an eval folder)")
    metrics = _numbers(data["metrics"])
    metric = _primary_metric(recipe["task"], metrics)
    weights = str(data.get("weights") or "")
    record = RunRecord(
        name=folder.name,
        path=str(folder),
        kind="eval",
        task=recipe["task"],
        recipe=str(recipe.get("name") or folder.name),
        metric=metric,
        value=metrics.get(metric) if metric else None,
        synthetic=bool(_lookup(recipe, "data.synthetic")),
        note=f"weights {weights}" if weights else "",
        metrics=metrics,
        recipe_values=recipe,
    )
    source = Path(weights).expanduser() if weights else None
    config = None
    if source is not None and source.is_dir():
        config = _weights_config(source / "weights")
    elif source is not None and source.suffix == ".safetensors" and source.is_file():
        config = _header_config(source)
    _add_model(record, config, recipe)
    return record


def _profile_records(path: Path) -> list[RunRecord]:
    data = _read_json(path)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
        raise NotAResult("not a run or eval folder, nor an `hrformer profile --json` file (no 'results' list)")
    return profile_records(results, str(path))


def profile_records(results: Sequence[dict[str, Any]], source: str) -> list[RunRecord]:
    """One record per `profile_model` result (as `hrformer profile --json` writes them): its size and, when
    timed, the batch-1 median latency as its metric (so the report plots latency against GMACs and params)."""
    records = []
    for result in results:
        try:
            convention = result["paper_convention"]
            height, width = result["input_size"]
            record = RunRecord(
                name=f"{result['model']} {result['task']} {height}x{width}",
                path=source,
                kind="profile",
                task=result["task"],
                recipe="-",
                model=result["model"],
                input_size=[int(height), int(width)],
                params=int(result["params"]["total"]),
                gmacs=float(result["gmacs"][convention]),
                gmacs_convention=convention,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NotAResult(f"a profile result without {exc} (not an `hrformer profile --json` file)") from None
        speed = result.get("speed") or {}
        if speed:
            record.metrics = {
                LATENCY_METRIC: 1e3 * float(speed["latency"]["median_s"]),
                "images_per_s": float(speed["throughput_images_per_s"]),
            }
            record.metric, record.value = LATENCY_METRIC, record.metrics[LATENCY_METRIC]
        records.append(record)
    return records


def _primary_metric(task: str, metrics: dict[str, Any]) -> str | None:
    """The task's primary metric; for a task not installed here, the first number in the metrics."""
    from ..tasks import get_task

    try:
        return get_task(task).primary_metric
    except HRFormerError:
        return next((key for key, value in metrics.items() if _is_number(value) and key not in ("epoch", "step")), None)


def _weights_config(folder: Path) -> ModelConfig | None:
    for name in ("best", "last"):
        if (folder / f"{name}.safetensors").is_file():
            return _header_config(folder / f"{name}.safetensors")
    return None


def _header_config(path: Path) -> ModelConfig | None:
    """The model config saved in a safetensors header (the tensors are not read); None when it has none."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return config_of(path, metadata)
    except (SafetensorError, OSError, ValueError, HRFormerError):
        return None


def _recipe_config(recipe: dict[str, Any]) -> ModelConfig | None:
    """The model the recipe builds, for runs without readable weights (None when the task cannot say)."""
    from ..engine.recipes import build_recipe, schema_for
    from ..tasks import get_task

    try:
        task = get_task(recipe["task"])
        config_for = getattr(task, "recipe_model_config", None)
        if config_for is None:
            return None
        return config_for(build_recipe(recipe, schema_for(task)))
    except HRFormerError:
        return None


def _add_model(record: RunRecord, config: ModelConfig | None, recipe: dict[str, Any]) -> None:
    """Model name, variant, input size, parameters and GMACs, from the weights' config else the recipe's."""
    config = config or _recipe_config(recipe)
    if config is None:
        record.model = _lookup(recipe, "model.name") or None
        return
    record.model = config.name
    record.model_config = config.to_dict()
    record.variant = describe_variant(config)
    height, width = input_size_of(config)
    record.input_size = [height, width]
    record.params, record.gmacs = model_size(json.dumps(config.to_dict(), sort_keys=True), (height, width))
    record.gmacs_convention = paper_convention(config.task)


def describe_variant(config: ModelConfig) -> str:
    """The options in which `config` differs from its named model's defaults, e.g. "ffn_dw=False"."""
    if config.name not in list_models():
        return ""
    named = model_config(config.name, config.task)
    changed = [key for key in VARIANT_FIELDS if getattr(config, key) != getattr(named, key)]
    return ", ".join(f"{key}={_show(getattr(config, key))}" for key in changed)


def _show(value: Any) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


@lru_cache(maxsize=64)
def model_size(config_json: str, input_hw: tuple[int, int]) -> tuple[int, float]:
    """Parameters and GMACs (the paper's convention for the head) of a model config given as JSON."""
    config = ModelConfig.from_dict(json.loads(config_json))
    with torch.device("meta"):
        params = count_params(build_model(config))["total"]
    return params, count_macs(config, input_hw, paper_convention(config.task)) / 1e9


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(values, dict) or key not in values:
            return None
        values = values[key]
    return values


def recipe_value(record: RunRecord, dotted: str) -> Any:
    """A key of the record's resolved recipe (`data.layout`), or None when it has none."""
    return _lookup(record.recipe_values, dotted)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


def _make_names_unique(records: list[RunRecord]) -> None:
    """Prefix the parent folder where two records share a name (runs/pose/quickstart, runs/cls/quickstart),
    then number any still alike (the same folder given twice)."""
    for rename in (lambda r: f"{Path(r.path).parent.name}/{r.name}", None):
        counts: dict[str, int] = {}
        for record in records:
            counts[record.name] = counts.get(record.name, 0) + 1
        for number, record in enumerate(records, 1):
            if counts[record.name] > 1:
                record.name = rename(record) if rename else f"{record.name} #{number}"
