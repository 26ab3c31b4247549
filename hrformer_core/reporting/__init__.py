"""Reports comparing runs (`hrformer report`, and the end of train, eval, profile and ablate) and our numbers
beside the paper's tables (`hrformer report --paper`).

`build_report(folders, out_dir, by="model")` reads run folders, eval folders and `hrformer profile --json`
files, skips (and names) anything else, and writes report.md, report.json and a self-contained report.html
with the plots; `write_report(Report(records), out_dir)` does the writing for records a command already has
(`profile_records` turns `profile_model` results into records).
"""

from .paper import (
    DIFFERS,
    NOT_MEASURABLE,
    REPRODUCED,
    PaperCell,
    PaperTable,
    compare_with_paper,
    measured_architecture,
    paper_row_count,
    table_names,
)
from .records import RunRecord, SkippedFolder, collect_records, profile_records, read_result
from .report import REPORT_FILES, Report, build_report, check_grouping, write_report
from .writers import GROUP_FIELDS, NUMERIC_COLUMNS, PAPER_LEGEND, paper_cell_texts, table_columns, table_row

__all__ = [
    "DIFFERS", "GROUP_FIELDS", "NOT_MEASURABLE", "NUMERIC_COLUMNS", "PAPER_LEGEND", "REPORT_FILES", "REPRODUCED",
    "PaperCell", "PaperTable", "Report", "RunRecord", "SkippedFolder", "build_report", "check_grouping",
    "collect_records", "compare_with_paper", "measured_architecture", "paper_cell_texts", "paper_row_count",
    "profile_records", "read_result", "table_columns", "table_names", "table_row", "write_report",
]  # fmt: skip
