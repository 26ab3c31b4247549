"""Our numbers beside the paper's Tables 2, 3, 5, 6, 7, 9 and 11, each cell marked with what it shows.

A cell is *reproduced* when our figure rounds to the printed one, *differs* (by how much, with the known reason
from `profiling.reference` where there is one), or is *not measurable here*: an accuracy needs a run of that
model trained and evaluated on the paper's dataset, which only the run folders given can supply (a matching
run fills the cell in). Table 2 is checked on the built model itself, not on its config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..errors import UsageError
from ..models import build_model, list_models, model_config
from ..models.blocks import HRFormerBlock
from ..models.config import ModelConfig
from ..profiling import count_macs, count_params, paper_convention
from ..profiling.reference import (
    PAPER_ARCHITECTURES,
    PAPER_ROWS,
    PAPER_TABLES,
    PaperFigure,
    PaperMetric,
    PaperRow,
    find_paper_figure,
)
from .records import RunRecord, recipe_value

REPRODUCED, DIFFERS, NOT_MEASURABLE = "reproduced", "differs", "not measurable here"
STATUSES = (REPRODUCED, DIFFERS, NOT_MEASURABLE)
# The backbone settings a run must share with a paper row to stand for it (heads and outputs may differ).
BACKBONE_FIELDS = (
    "channels", "num_heads", "num_modules", "num_blocks", "window_sizes", "mlp_ratio", "block", "ffn_dw",
    "shifted_windows",
)  # fmt: skip
ARCHITECTURE_COLUMNS = {
    "num_modules": "#modules",
    "num_blocks": "#blocks",
    "channels": "#channels",
    "num_heads": "#heads",
    "window_sizes": "window sizes",
    "mlp_ratios": "MLP ratios",
}


@dataclass
class PaperCell:
    """Ours beside the paper's printed figure; `detail` says by how much and why, or what would measure it."""

    column: str
    paper: str
    ours: str
    status: str
    detail: str = ""
    source: str = ""  # the run folder an accuracy came from
    awaiting_run: bool = False  # an accuracy no folder given measures (a run or eval folder would fill it in)


@dataclass
class PaperTable:
    table: str  # "Table 3"
    title: str
    columns: list[str]
    rows: list[tuple[str, list[PaperCell]]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "title": self.title,
            "columns": self.columns,
            "rows": [{"label": label, "cells": [asdict(cell) for cell in cells]} for label, cells in self.rows],
        }


def table_names() -> list[str]:
    return list(PAPER_TABLES)


def paper_row_count(tables: Iterable[str] | None = None, models: Iterable[str] | None = None) -> int:
    """How many rows `compare_with_paper` measures for these tables and models (a progress bar's total)."""
    return len(_work(_table_keys(tables), models))


def _work(keys: Sequence[str], models: Iterable[str] | None) -> list[tuple[str, str, Any]]:
    """(table, row label, Table 2 architecture or PaperRow) for every row to measure, in table order."""
    wanted = None if models is None else set(models)
    unknown = sorted((wanted or set()) - set(list_models()))
    if unknown:
        raise UsageError(f"--model {', '.join(unknown)}: unknown model; expected some of {', '.join(list_models())}")
    work: list[tuple[str, str, Any]] = []
    for key in keys:
        if key == "Table 2":
            work += [(key, model, printed) for model, printed in PAPER_ARCHITECTURES.items()]
        else:
            work += [(key, row.label, row) for row in PAPER_ROWS if row.table == key]
    return [item for item in work if wanted is None or _row_model(item) in wanted]


def _row_model(item: tuple[str, str, Any]) -> str:
    return item[2].model if isinstance(item[2], PaperRow) else item[1]


def compare_with_paper(
    records: Sequence[RunRecord] = (),
    tables: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    models: Iterable[str] | None = None,
) -> list[PaperTable]:
    """The paper's tables (all, or those named: "Table 3" or "3") with our measurements in every cell; with
    `models`, only the rows of those models (registry names).

    Parameters and GMACs are counted on the meta device under the paper's convention (seconds per model);
    accuracies come from the `records` that match a row (see `matches`). `progress(label)` is called before
    each row is measured.
    """
    keys = _table_keys(tables)
    result = {key: PaperTable(key, PAPER_TABLES[key], []) for key in keys}
    for key, label, item in _work(keys, models):
        if progress is not None:
            progress(f"{key} {label}")
        table = result[key]
        if isinstance(item, PaperRow):
            cells = [*_size_cells(item), *(_metric_cell(item, metric, records) for metric in item.metrics)]
        else:
            cells = _architecture_cells(label, item)
        table.rows.append((label, cells))
        table.columns = list(dict.fromkeys([*table.columns, *(cell.column for cell in cells)]))
    return [table for table in result.values() if table.rows]


def _table_keys(tables: Iterable[str] | None) -> list[str]:
    if tables is None:
        return list(PAPER_TABLES)
    keys = []
    for name in tables:
        key = name if name in PAPER_TABLES else f"Table {name}"
        if key not in PAPER_TABLES:
            numbers = ", ".join(k.removeprefix("Table ") for k in PAPER_TABLES)
            raise UsageError(f"--table {name}: the paper comparison has tables {numbers}")
        keys.append(key)
    return list(dict.fromkeys(keys))


def rounds_to(value: float, printed: str) -> bool:
    """Whether `value` is the printed figure to the digits it shows (half a unit of its last digit)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(value - float(printed)) <= 0.5 * 10**-decimals + 1e-9


def _decimals(printed: str) -> int:
    return len(printed.split(".")[1]) if "." in printed else 0


def _compare(column: str, ours: float, printed: str, note: str = "", digits: int = 3) -> PaperCell:
    """A measured figure against the printed one: reproduced, or differs by the percentage (with the note)."""
    text = f"{ours:.{digits}f}"
    if rounds_to(ours, printed):
        return PaperCell(column, printed, text, REPRODUCED)
    percent = 100.0 * (ours - float(printed)) / float(printed)
    detail = f"{percent:+.1f} % ({text} against {printed})" + (f"; {note}" if note else "")
    return PaperCell(column, printed, text, DIFFERS, detail)


# --- Table 2: the architecture, read off the built model --------------------------------------------------


def measured_architecture(config: ModelConfig) -> dict[str, tuple[float, ...]]:
    """Modules per stage, blocks per branch, and per branch the channels, heads, window size and MLP ratio,
    as the model built from `config` has them (on the meta device)."""
    with torch.device("meta"):
        backbone = build_model(config).backbone
    stages = [getattr(backbone, f"stage{s}") for s in (2, 3, 4)]
    last_module = stages[-1][0]
    blocks = [branch[0] for branch in last_module.branches]  # the first block of every branch of stage 4
    if not all(isinstance(block, HRFormerBlock) for block in blocks):
        raise UsageError(f"{config.name}: not an HRFormer (transformer-block) model; Table 2 has none of those")
    return {
        "num_modules": (1, *(len(stage) for stage in stages)),  # stage 1 is one module of bottlenecks
        "num_blocks": (len(backbone.layer1), *(len(stage[0].branches[0]) for stage in stages)),
        "channels": tuple(block.attn.dim for block in blocks),
        "num_heads": tuple(block.attn.num_heads for block in blocks),
        "window_sizes": tuple(block.attn.window for block in blocks),
        "mlp_ratios": tuple(_ratio(block.ffn.fc1.out_channels, block.attn.dim) for block in blocks),
    }


def _ratio(hidden: int, dim: int) -> float:
    ratio = hidden / dim
    return int(ratio) if ratio.is_integer() else ratio


def _architecture_cells(model: str, printed: dict[str, tuple[float, ...]]) -> list[PaperCell]:
    ours = measured_architecture(model_config(model))
    cells = []
    for key, column in ARCHITECTURE_COLUMNS.items():
        mine, theirs = ours[key], tuple(printed[key])
        status = REPRODUCED if mine == theirs else DIFFERS
        detail = "" if status == REPRODUCED else f"the model has {_tuple(mine)}"
        cells.append(PaperCell(column, _tuple(theirs), _tuple(mine), status, detail))
    return cells


def _tuple(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


# --- Tables 3-11: parameters, FLOPs and accuracies ------------------------------------------------------


def _row_config(row: PaperRow, task: str) -> ModelConfig:
    return model_config(row.model, task, ffn_dw=row.ffn_dw, shifted_windows=row.shifted_windows)


def _figure(row: PaperRow) -> PaperFigure:
    figure = find_paper_figure(_row_config(row, row.task), row.input_hw)
    if figure is None:  # the reference data is inconsistent: a programming error, not a user's
        raise LookupError(f"{row.table} {row.label}: no PAPER_FIGURES row for {row.model} {row.task} {row.input_hw}")
    return figure


def _size_cells(row: PaperRow) -> list[PaperCell]:
    figure = _figure(row)
    params, gmacs = _measure(row.model, row.task, row.ffn_dw, row.shifted_windows, row.input_hw)
    return [
        _compare("params (M)", params / 1e6, f"{figure.params_m}", figure.note),
        _compare(f"GFLOPs ({paper_convention(row.task)})", gmacs, row.gmacs_printed or f"{figure.gmacs}", figure.note),
    ]


_MEASURED: dict[tuple[Any, ...], tuple[int, float]] = {}


def _measure(model: str, task: str, ffn_dw: bool, shifted: bool, input_hw: tuple[int, int]) -> tuple[int, float]:
    """Parameters and GMACs under the paper's convention, counted once per process for each configuration."""
    key = (model, task, ffn_dw, shifted, tuple(input_hw))
    if key not in _MEASURED:
        config = model_config(model, task, ffn_dw=ffn_dw, shifted_windows=shifted)
        with torch.device("meta"):
            params = count_params(build_model(config))["total"]
        _MEASURED[key] = params, count_macs(config, input_hw, paper_convention(task)) / 1e9
    return _MEASURED[key]


def matches(record: RunRecord, row: PaperRow, metric: PaperMetric) -> bool:
    """Whether a run stands for the paper's figure: same task and backbone, input size, real (not synthetic)
    data, the metric measured, and the recipe settings the figure needs (dataset, test protocol)."""
    if record.task != metric.task or record.metric != metric.metric or record.value is None or record.synthetic:
        return False
    if record.model_config is None or record.kind not in ("run", "eval"):
        return False
    if metric.input_hw is not None and tuple(record.input_size or ()) != tuple(metric.input_hw):
        return False
    wanted = _row_config(row, metric.task)
    if any(_plain(record.model_config.get(key)) != _plain(getattr(wanted, key)) for key in BACKBONE_FIELDS):
        return False
    if any(recipe_value(record, key) != value for key, value in metric.required):
        return False
    return not any(recipe_value(record, key) == value for key, value in metric.excluded)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def _metric_cell(row: PaperRow, metric: PaperMetric, records: Sequence[RunRecord]) -> PaperCell:
    if metric.unsupported:
        return PaperCell(metric.column, metric.printed, "", NOT_MEASURABLE, metric.unsupported)
    found = [record for record in records if matches(record, row, metric)]
    if not found:
        size = f" {metric.input_hw[0]}x{metric.input_hw[1]}" if metric.input_hw else ""
        need = (
            f"needs a run or evaluation of {_row_config(row, metric.task).name}{size} "
            f"({metric.task}{', ' + _options(row) if _options(row) else ''}) on {metric.dataset}; "
            "no such folder was given"
        )
        return PaperCell(metric.column, metric.printed, "", NOT_MEASURABLE, need, awaiting_run=True)
    best = max(found, key=lambda record: record.value)
    ours = best.value * metric.scale
    digits = _decimals(metric.printed)
    cell = PaperCell(metric.column, metric.printed, f"{ours:.{digits}f}", REPRODUCED, source=best.path)
    if not rounds_to(ours, metric.printed):
        cell.status = DIFFERS
        cell.detail = f"{ours - float(metric.printed):+.{max(digits, 1)}f} points"
    if len(found) > 1:
        cell.detail = ", ".join(filter(None, [cell.detail, f"best of {len(found)} matching runs"]))
    return cell


def _options(row: PaperRow) -> str:
    options = [] if row.ffn_dw else ["no FFN depth-wise conv"]
    return ", ".join([*options, *(["shifted windows"] if row.shifted_windows else [])])


def status_counts(tables: Sequence[PaperTable]) -> dict[str, int]:
    """How many cells are reproduced, differ, or cannot be measured here."""
    counts = dict.fromkeys(STATUSES, 0)
    for table in tables:
        for _, cells in table.rows:
            for cell in cells:
                counts[cell.status] += 1
    return counts
