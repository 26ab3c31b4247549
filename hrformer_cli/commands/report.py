"""`hrformer report`: one table comparing runs (Markdown, JSON and an HTML page with plots), and `--paper`."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from hrformer_core.errors import HRFormerError, UsageError
from hrformer_core.reporting import (
    DIFFERS,
    GROUP_FIELDS,
    NOT_MEASURABLE,
    NUMERIC_COLUMNS,
    PAPER_LEGEND,
    REPRODUCED,
    PaperTable,
    Report,
    SkippedFolder,
    build_report,
    collect_records,
    compare_with_paper,
    paper_cell_texts,
    paper_row_count,
    table_columns,
    table_names,
    table_row,
    write_report,
)
from hrformer_core.utils.io import unique_dir

from ..output import console, err_console

By = Enum("By", {name: name for name in GROUP_FIELDS}, type=str)
STATUS_STYLES = {REPRODUCED: "green", DIFFERS: "yellow", NOT_MEASURABLE: "dim"}


def runs_table(report: Report) -> Table:
    """All results in one table, the grouping column first, a rule between groups."""
    table = Table(title=f"{len(report.records)} result(s) by {report.by}", title_justify="left")
    for column in table_columns(report.by):
        table.add_column(column, justify="right" if column in NUMERIC_COLUMNS else "left")
    for members in report.groups.values():
        for number, record in enumerate(members):
            table.add_row(*table_row(record, report.by), end_section=number == len(members) - 1)
    return table


def paper_table(table: PaperTable) -> tuple[Table, list[str]]:
    """One paper table with each cell coloured by its status, and its footnotes."""
    grid, footnotes = paper_cell_texts(table)
    shown = Table(title=f"{table.table}: {table.title}", title_justify="left")
    shown.add_column("")
    for column in table.columns:
        shown.add_column(column, justify="right")
    for (_, cells), texts in zip(table.rows, grid, strict=True):
        styles = {cell.column: STATUS_STYLES[cell.status] for cell in cells}
        shown.add_row(
            texts[0], *(f"[{styles.get(c, 'default')}]{t}[/]" for c, t in zip(table.columns, texts[1:], strict=True))
        )
    return shown, footnotes


def print_skipped(skipped: Sequence[SkippedFolder]) -> None:
    for item in skipped:
        err_console.print(f"[yellow]skipped[/] {item.path}: {item.reason}", highlight=False, soft_wrap=True)


def print_written(report: Report) -> None:
    files = ", ".join(str(path) for path in report.paths.values())
    console.print(f"report: {files}", highlight=False, soft_wrap=True)


def report_into(folder: Path, title: str, results: Sequence[Path] | None = None) -> None:
    """The report of `results` (default: `folder` itself, a run or eval folder), written into `folder` (the end
    of `hrformer train`, `eval` and `ablate`); what the report cannot read is said in one line, the command's
    own result stands."""
    try:
        print_written(build_report(list(results or [folder]), folder, title=title))
    except HRFormerError as exc:
        err_console.print(f"[yellow]note:[/] no report written for {folder}: {exc}", highlight=False, soft_wrap=True)


def report(
    folders: list[Path] = typer.Argument(
        None,
        help="Run folders, eval folders or `hrformer profile --json` files.",
        show_default=False,
        metavar="RUN_DIR",
    ),
    by: By = typer.Option("model", "--by", help="Group the runs by model (name and options) or by recipe."),
    out: Path = typer.Option(None, "--out", help="Folder for report.md/json/html (default: a new runs/report)."),
    paper: bool = typer.Option(False, "--paper", help="Our numbers beside the paper's tables."),
    tables: list[str] = typer.Option(
        None,
        "--table",
        help=f"With --paper, only these tables ({', '.join(table_names())}; or 3, 6, ...).",
        show_default=False,
    ),
    models: list[str] = typer.Option(
        None, "--model", help="With --paper, only the rows of these models (e.g. hrformer-t).", show_default=False
    ),
) -> None:
    """Compare runs in one table (params, GMACs, metric, best epoch, training time), written as Markdown, JSON
    and a self-contained HTML page with the training curves and metric-against-cost plots.

    --paper puts our measurements beside the paper's Tables 2, 3, 5, 6, 7, 9 and 11: each cell reproduced,
    differing (by how much, and why where known) or not measurable here; accuracies come from the run or eval
    folders given whose model, input size, dataset and test settings match a row.
    """
    folders = list(folders or [])
    if (tables or models) and not paper:
        raise UsageError("--table and --model select rows of the paper comparison: add --paper")
    if not folders and not paper:
        raise UsageError("report: give run folders, eval folders or profile JSON files (or --paper)")
    records, skipped = collect_records(folders)
    print_skipped(skipped)
    if folders and not records:
        raise UsageError(f"none of the {len(folders)} path(s) given is a run, eval folder or profile JSON")
    paper_tables: list[PaperTable] = []
    if paper:
        selected, only = tables or None, models or None
        total = paper_row_count(selected, only)  # checks the tables and models first
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("measuring the paper's models", total=total)

            def advance(label: str) -> None:
                progress.update(task, advance=1, description=f"measuring {label}")

            paper_tables = compare_with_paper(records, selected, advance, only)
    result = write_report(Report(records, skipped, by.value, paper_tables), out or unique_dir("runs", "report"))
    if records:
        console.print(runs_table(result))
        for note in result.notes:
            console.print(f"[dim]* {note}[/]", highlight=False)
    for table in paper_tables:
        shown, footnotes = paper_table(table)
        console.print(shown)
        for number, note in enumerate(footnotes, 1):
            console.print(f"[dim]{number}. {note}[/]", highlight=False)
    if paper_tables:
        console.print(f"[dim]{PAPER_LEGEND}[/]", highlight=False)
    print_written(result)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
