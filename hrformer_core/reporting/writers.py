"""The report as text: table rows (shared by the terminal, Markdown and HTML), Markdown, JSON and one
self-contained HTML page (styles inline, plots as data: URIs, nothing fetched from anywhere)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .figures import run_colour
from .paper import DIFFERS, NOT_MEASURABLE, REPRODUCED, PaperCell, PaperTable, status_counts
from .records import RunRecord

if TYPE_CHECKING:
    from .report import Report

GROUP_FIELDS = ("model", "recipe")
# "model" is the variant: the model's name and any options in which it differs from that model's defaults.
COLUMNS = (
    "run", "task", "model", "recipe", "input", "params (M)", "GMACs", "metric", "value", "best epoch", "train time",
    "steps",
)  # fmt: skip
NUMERIC_COLUMNS = frozenset({"params (M)", "GMACs", "value", "best epoch", "train time", "steps"})
STATUS_MARKS = {REPRODUCED: "✓", DIFFERS: "≠", NOT_MEASURABLE: "–"}


def group_records(records: Sequence[RunRecord], by: str) -> dict[str, list[RunRecord]]:
    """The records by model (name and variant) or by recipe, groups in order of first appearance."""
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        key = record.model_label if by == "model" else record.recipe
        groups.setdefault(key, []).append(record)
    return groups


def table_columns(by: str) -> list[str]:
    """The columns, the grouping one first."""
    return [by, *(column for column in COLUMNS if column != by)]


def table_row(record: RunRecord, by: str) -> list[str]:
    cells = {
        "run": record.name,
        "task": record.task,
        "model": record.model_label,
        "recipe": record.recipe,
        "input": "x".join(map(str, record.input_size)) if record.input_size else "-",
        "params (M)": f"{record.params / 1e6:.3f}" if record.params is not None else "-",
        "GMACs": _gmacs(record.gmacs),
        "metric": record.metric or "-",
        "value": f"{record.value:.4f}" if record.value is not None else "-",
        "best epoch": _best_at(record),
        "train time": duration(record.train_seconds),
        "steps": _steps(record),
    }
    return [cells[column] for column in table_columns(by)]


def _gmacs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 100 else f"{value:.3f}"


def _best_at(record: RunRecord) -> str:
    """`2 (step 380)`: the epoch and step of the best evaluation."""
    if record.best_epoch is None:
        return f"step {record.best_step}" if record.best_step is not None else "-"
    return f"{record.best_epoch}" + (f" (step {record.best_step})" if record.best_step is not None else "")


def _steps(record: RunRecord) -> str:
    if record.steps is None:
        return "-"
    return f"{record.steps}/{record.total_steps}" if record.total_steps is not None else str(record.steps)


def duration(seconds: float | None) -> str:
    """`45.2 s`, `2 min 05 s`, `3 h 07 min`."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def report_notes(records: Sequence[RunRecord]) -> list[str]:
    """Footnotes: how GMACs were counted for each head, synthetic-data runs, and what each run's note says."""
    notes = []
    conventions = dict.fromkeys(f"{r.task}: {r.gmacs_convention}" for r in records if r.gmacs_convention)
    if conventions:
        notes.append(
            "GMACs: G = 1e9 multiply-accumulates of one forward pass at the run's input size, counted under the "
            f"paper's convention for the head ({'; '.join(conventions)}); params count trainable parameters."
        )
    synthetic = [r.name for r in records if r.synthetic]
    if synthetic:
        notes.append(
            f"Trained or evaluated on the built-in synthetic data: {', '.join(synthetic)}; their metrics are not "
            "comparable with the paper's datasets."
        )
    notes.extend(f"{r.name}: {r.note}" for r in records if r.note and r.kind == "run")
    return notes


# --- paper tables as text ---------------------------------------------------------------------------------


def paper_cell_texts(table: PaperTable) -> tuple[list[list[str]], list[str]]:
    """Each cell as `ours vs paper ✓|≠|–` (`ours ✓` when both read the same), with a footnote number where
    there is more to say than PAPER_LEGEND does; the footnotes (identical ones shared)."""
    footnotes: list[str] = []
    grid = []
    for label, cells in table.rows:
        by_column = {cell.column: cell for cell in cells}
        row = [label]
        for column in table.columns:
            cell = by_column.get(column)
            row.append(_cell_text(cell, footnotes) if cell is not None else "")
        grid.append(row)
    return grid, footnotes


def _cell_text(cell: PaperCell, footnotes: list[str]) -> str:
    mark = STATUS_MARKS[cell.status]
    if not cell.ours:
        text = f"{mark} (paper {cell.paper})"
    else:
        text = f"{cell.ours} {mark}" if cell.ours == cell.paper else f"{cell.ours} vs {cell.paper} {mark}"
    if cell.detail and not cell.awaiting_run:
        if cell.detail not in footnotes:
            footnotes.append(cell.detail)
        text += f" [{footnotes.index(cell.detail) + 1}]"
    return text


PAPER_LEGEND = (
    f"{STATUS_MARKS[REPRODUCED]} reproduced (ours rounds to the printed figure), {STATUS_MARKS[DIFFERS]} differs "
    f"(by how much, and why where known), {STATUS_MARKS[NOT_MEASURABLE]} not measurable here: an accuracy needs "
    "that model trained and evaluated on the paper's dataset (none of which is in this toolkit's synthetic sets); "
    "give the run or eval folder of such a run to fill its cell in."
)


# --- Markdown -----------------------------------------------------------------------------------------------


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(columns), "|" + "---|" * len(columns), *(line(row) for row in rows)]


def render_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    if report.records:
        rows = [table_row(record, report.by) for members in report.groups.values() for record in members]
        lines += [
            f"{len(report.records)} result(s), by {report.by}.",
            "",
            *_md_table(table_columns(report.by), rows),
            "",
        ]
        lines += [f"- {note}" for note in report.notes] + ([""] if report.notes else [])
    if report.skipped:
        lines += ["## Skipped", "", *(f"- {s.path}: {s.reason}" for s in report.skipped), ""]
    if report.paper:
        counts = status_counts(report.paper)
        lines += ["# Against the paper", "", PAPER_LEGEND, "", ", ".join(f"{n} {s}" for s, n in counts.items()), ""]
        for table in report.paper:
            grid, footnotes = paper_cell_texts(table)
            lines += [f"## {table.table}: {table.title}", "", *_md_table(["", *table.columns], grid), ""]
            lines += [f"{number}. {note}" for number, note in enumerate(footnotes, 1)] + ([""] if footnotes else [])
    return "\n".join(lines).rstrip() + "\n"


# --- JSON ---------------------------------------------------------------------------------------------------


def render_json(report: Report) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": report.title,
        "by": report.by,
        "columns": table_columns(report.by),
        "groups": [
            {"key": key, "runs": [r.name for r in members], "rows": [table_row(r, report.by) for r in members]}
            for key, members in report.groups.items()
        ],
        "runs": [record.to_dict() for record in report.records],
        "notes": report.notes,
        "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
    }
    if report.paper:
        data["paper"] = [table.to_dict() for table in report.paper]
        data["paper_status_counts"] = status_counts(report.paper)
    return data


# --- HTML ---------------------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1500px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; vertical-align: top; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
tr.group td { border-top: 2px solid #888; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.4em; vertical-align: -0.1em;
          border-radius: 2px; }
.reproduced { background: #e3f4e1; } .differs { background: #fdf0d5; } .not-measurable { background: #f1f1f1;
  color: #666; }
.detail { display: block; font-size: 0.8em; color: #555; max-width: 26em; text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-weight: 600; margin-bottom: 0.3em; }
ul.notes li { margin: 0.2em 0; } .skipped { color: #8a4b00; }
"""


_TEXT_CLASS, _GROUP_CLASS = ' class="text"', ' class="group"'


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_table(columns: Sequence[str], rows: Sequence[str], numeric: frozenset[str] = frozenset()) -> str:
    head = "".join(f"<th{_TEXT_CLASS if c not in numeric else ''}>{_esc(c)}</th>" for c in columns)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _run_rows(report: Report) -> list[str]:
    """One row per record, by group; a group's first row opens with a rule (class `group`)."""
    index = {id(record): number for number, record in enumerate(report.records)}
    columns = table_columns(report.by)
    rows = []
    for record, first in ((r, n == 0) for members in report.groups.values() for n, r in enumerate(members)):
        cells = []
        for column, text in zip(columns, table_row(record, report.by), strict=True):
            if column == "run":
                swatch = f'<span class="swatch" style="background:{run_colour(index[id(record)])}"></span>'
                cells.append(f'<td class="text" title="{_esc(record.path)}">{swatch}{_esc(text)}</td>')
            else:
                css = "" if column in NUMERIC_COLUMNS else _TEXT_CLASS
                cells.append(f"<td{css}>{_esc(text)}</td>")
        rows.append(f"<tr{_GROUP_CLASS if first else ''}>{''.join(cells)}</tr>")
    return rows


def _paper_html(table: PaperTable) -> str:
    rows = []
    for label, cells in table.rows:
        by_column = {cell.column: cell for cell in cells}
        parts = [f'<td class="text">{_esc(label)}</td>']
        for column in table.columns:
            cell = by_column.get(column)
            if cell is None:
                parts.append("<td></td>")
                continue
            css = cell.status.replace(" here", "").replace(" ", "-")
            mark = STATUS_MARKS[cell.status]
            if not cell.ours:
                shown = f"<small>paper {_esc(cell.paper)}</small> {mark}"
            elif cell.ours == cell.paper:
                shown = f"{_esc(cell.ours)} <small>{mark}</small>"
            else:
                shown = f"{_esc(cell.ours)} <small>vs {_esc(cell.paper)} {mark}</small>"
            # What would measure an accuracy is the same for every such cell: a tooltip, not a paragraph.
            shown_detail = cell.detail and not cell.awaiting_run
            detail = f'<span class="detail">{_esc(cell.detail)}</span>' if shown_detail else ""
            source = f'<span class="detail">from {_esc(cell.source)}</span>' if cell.source else ""
            title = f"{cell.status}: {cell.detail}" if cell.detail else cell.status
            parts.append(f'<td class="{css}" title="{_esc(title)}">{shown}{detail}{source}</td>')
        rows.append(f"<tr>{''.join(parts)}</tr>")
    columns = ["", *table.columns]
    return f"<h3>{_esc(table.table)}: {_esc(table.title)}</h3>" + _html_table(columns, rows, frozenset(table.columns))


def render_html(report: Report, figures: dict[str, bytes]) -> str:
    body = [f"<h1>{_esc(report.title)}</h1>"]
    if report.records:
        body.append(f"<p>{len(report.records)} result(s), grouped by {_esc(report.by)}.</p>")
        body.append(_html_table(table_columns(report.by), _run_rows(report), NUMERIC_COLUMNS))
        if report.notes:
            body.append('<ul class="notes">' + "".join(f"<li>{_esc(n)}</li>" for n in report.notes) + "</ul>")
    if report.skipped:
        items = "".join(f"<li>{_esc(s.path)}: {_esc(s.reason)}</li>" for s in report.skipped)
        body.append(f'<h2>Skipped</h2><ul class="skipped">{items}</ul>')
    if figures:
        body.append("<h2>Plots</h2>")
        for title, png in figures.items():
            data = base64.b64encode(png).decode("ascii")
            body.append(
                f'<figure><figcaption>{_esc(title)}</figcaption><img alt="{_esc(title)}" '
                f'src="data:image/png;base64,{data}"></figure>'
            )
    elif report.records:
        body.append("<p>No training curves or metrics to plot in these results.</p>")
    if report.paper:
        counts = ", ".join(f"{n} {s}" for s, n in status_counts(report.paper).items())
        body.append(f"<h2>Against the paper</h2><p>{_esc(PAPER_LEGEND)}</p><p>{_esc(counts)}</p>")
        body.extend(_paper_html(table) for table in report.paper)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(report.title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
