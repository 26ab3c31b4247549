"""`build_report`: read results, optionally put the paper beside them, and write report.md/json/html."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..utils.io import write_json, write_text
from .figures import report_figures
from .paper import PaperTable, compare_with_paper
from .records import RunRecord, SkippedFolder, collect_records
from .writers import GROUP_FIELDS, group_records, render_html, render_json, render_markdown, report_notes

REPORT_FILES = {"markdown": "report.md", "json": "report.json", "html": "report.html"}
DEFAULT_TITLE = "HRFormer run report"


@dataclass
class Report:
    """What a report compared, what it skipped (and why), the paper tables, and the files it wrote."""

    records: list[RunRecord]
    skipped: list[SkippedFolder] = field(default_factory=list)
    by: str = "model"
    paper: list[PaperTable] = field(default_factory=list)
    title: str = DEFAULT_TITLE
    paths: dict[str, Path] = field(default_factory=dict)  # "markdown", "json", "html" -> file written

    @property
    def groups(self) -> dict[str, list[RunRecord]]:
        return group_records(self.records, self.by)

    @property
    def notes(self) -> list[str]:
        return report_notes(self.records)


def check_grouping(by: str) -> str:
    if by not in GROUP_FIELDS:
        raise UsageError(f"--by {by}: expected one of {', '.join(GROUP_FIELDS)}")
    return by


def build_report(
    folders: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    by: str = "model",
    *,
    paper: bool = False,
    tables: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    title: str = DEFAULT_TITLE,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Compare the runs in `folders` (run folders, eval folders, `hrformer profile --json` files) and write
    report.md, report.json and report.html to `out_dir`.

    Anything that is not a result is skipped and named in `Report.skipped` with the reason; when nothing is
    left (and no paper comparison was asked for), a UsageError says why each was skipped. `paper=True` adds
    the paper's tables (`tables`: only these, e.g. ["3", "6"]; `models`: only those rows), accuracies filled
    in from matching runs.
    """
    by = check_grouping(by)
    folders = list(folders)
    records, skipped = collect_records(folders)
    if not records and not paper:
        if not folders:
            raise UsageError("nothing to report: give run folders, eval folders or profile JSON files")
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped)
        raise UsageError(f"none of the {len(folders)} path(s) given is a run, eval folder or profile JSON ({reasons})")
    paper_tables = compare_with_paper(records, tables, progress, models) if paper else []
    return write_report(Report(records, skipped, by, paper_tables, title), out_dir)


def write_report(report: Report, out_dir: str | os.PathLike) -> Report:
    """Write the report's three files to `out_dir` (each atomically) and record their paths in it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.paths = {
        "markdown": write_text(out / REPORT_FILES["markdown"], render_markdown(report)),
        "json": write_json(out / REPORT_FILES["json"], render_json(report)),
        "html": write_text(out / REPORT_FILES["html"], render_html(report, report_figures(report.records))),
    }
    return report
