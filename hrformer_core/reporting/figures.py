"""The report's plots as PNG bytes: training losses overlaid, the metric at each evaluation, and the metric
against GMACs and against parameters (the paper's accuracy-vs-cost comparisons).

Drawn without pyplot state (as `engine.plots`), so a report written at the end of training in a thread or a
notebook never touches a global figure. Each run keeps its colour (`run_colour`) in every plot and in the
report's tables; runs of different tasks or metrics get their own panels, since their scales differ.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .records import RunRecord

# matplotlib's tab10, so a colour named in the table is the one in the plots.
RUN_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
PANEL_SIZE = (5.2, 3.6)  # inches per panel
LABEL_STEP = 9  # points between the labels of neighbouring scatter points
LOG_SCALE_SPAN = 10.0  # a loss axis is logarithmic when its values span more than this factor
DPI = 100


def run_colour(index: int) -> str:
    return RUN_COLOURS[index % len(RUN_COLOURS)]


Members = list[tuple[int, RunRecord]]  # (the run's index in the report, its record)


@dataclass(frozen=True)
class _Plot:
    """One figure: which panel a record belongs to, whether it has anything to draw, how a panel is drawn."""

    panel: Callable[[RunRecord], str | None]
    has_data: Callable[[RunRecord], bool]
    draw: Callable[[Axes, str, Members], None]


def report_figures(records: Sequence[RunRecord]) -> dict[str, bytes]:
    """The plots that have data, by title: each a PNG of one row of panels."""
    plots = {
        "Training loss": _Plot(lambda r: r.task, lambda r: bool(r.loss_curve), _draw_losses),
        "Metric at each evaluation": _Plot(lambda r: r.metric, lambda r: bool(r.metric_curve), _draw_curves),
        "Metric against GMACs": _scatter("gmacs"),
        "Metric against parameters": _scatter("params"),
    }
    figures = {title: _render(records, plot) for title, plot in plots.items()}
    return {title: png for title, png in figures.items() if png is not None}


def _render(records: Sequence[RunRecord], plot: _Plot) -> bytes | None:
    """One panel per task or metric that has data, side by side; None when none has."""
    panels: dict[str, Members] = {}
    for index, record in enumerate(records):
        name = plot.panel(record)
        if name and plot.has_data(record):
            panels.setdefault(name, []).append((index, record))
    if not panels:
        return None
    figure = Figure(figsize=(PANEL_SIZE[0] * len(panels), PANEL_SIZE[1]), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (name, members) in zip(axes, panels.items(), strict=True):
        plot.draw(axis, name, members)
        axis.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _draw_losses(axis: Axes, task: str, members: Members) -> None:
    values = [loss for _, record in members for _, loss in record.loss_curve]
    for index, record in members:
        steps, losses = zip(*record.loss_curve, strict=True)
        axis.plot(steps, losses, color=run_colour(index), linewidth=1.2, label=record.name)
    if min(values) > 0 and max(values) > LOG_SCALE_SPAN * min(values):  # losses that fall by decades
        axis.set_yscale("log")
    axis.set_title(f"{task}: training loss per step")
    axis.set_xlabel("step")
    axis.xaxis.set_major_locator(MaxNLocator(6, integer=True))
    axis.legend(fontsize=7)


def _draw_curves(axis: Axes, metric: str, members: Members) -> None:
    for index, record in members:
        steps, values = zip(*record.metric_curve, strict=True)
        axis.plot(steps, values, color=run_colour(index), marker="o", markersize=4, label=record.name)
    axis.set_title(f"{metric} at each evaluation")
    axis.set_xlabel("step")
    axis.xaxis.set_major_locator(MaxNLocator(6, integer=True))
    axis.set_ylabel(metric)
    axis.legend(fontsize=7)


def _scatter(x_field: str) -> _Plot:
    """The metric against GMACs or parameters (M), one labelled point per run."""
    in_millions = x_field == "params"

    def x_of(record: RunRecord) -> float | None:
        value = getattr(record, x_field)
        return None if value is None else value / 1e6 if in_millions else value

    def draw(axis: Axes, metric: str, members: Members) -> None:
        for order, (index, record) in enumerate(members):
            x = x_of(record)
            axis.scatter([x], [record.value], color=run_colour(index), s=60, zorder=3)
            # Labels stepped up in turn, so runs of the same size and score stay readable.
            offset = (6, 4 + LABEL_STEP * (order % 3))
            axis.annotate(record.name, (x, record.value), textcoords="offset points", xytext=offset, fontsize=7)
        axis.set_title(f"{metric} against {'parameters' if in_millions else 'GMACs'}")
        axis.set_xlabel("parameters (M)" if in_millions else "GMACs (the paper's convention)")
        axis.set_ylabel(metric)
        axis.xaxis.set_major_locator(MaxNLocator(6))

    return _Plot(lambda r: r.metric, lambda r: x_of(r) is not None and r.value is not None, draw)
