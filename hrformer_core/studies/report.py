"""A study's report as table cells (the CLI draws them with rich, `study.md` as Markdown) and its files.

Metrics are shown in the paper's units (percent: AP and mIoU x 100), ours as mean ± std over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..utils.io import write_json, write_text


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _printed(value: float | None) -> str:
    return "-" if value is None else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.1f} s"


def _metric(row: dict[str, Any]) -> str:
    if row["mean"] is None:
        return "-"
    seeds = len(row["values"])
    spread = f" ± {row['std']:.2f}" if row["std"] is not None else ""
    return f"{row['mean']:.2f}{spread} ({seeds} seed{'s' if seeds > 1 else ''})"


def table(report: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """(title, column headers, rows of cells) of a study report."""
    return _profile_table(report) if report["kind"] == "profile" else _train_table(report)


def _train_table(report: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    profiles = [row["profile"] for row in report["rows"] if row["profile"]]
    convention = profiles[0]["convention"] if profiles else "paper"
    size = "x".join(map(str, profiles[0]["input_size"])) if profiles else "-"
    table_name = f" ({report['paper_table']})" if report["paper_table"] else ""
    title = f"{report['study']}{table_name} on {report['task']}: {report['title']}; models profiled at {size}"
    metric = report["metric"]
    unit = " (%)" if report["metric_scale"] else ""
    paper = f"paper {metric}" + (f" ({report['paper_dataset']})" if report["paper_dataset"] else "")
    headers = [
        "arm", "model", "steps", "params (M)", f"GMACs {convention}", "GMACs torch", "latency (ms)",
        "train time", f"{metric}{unit}", paper, "status",
    ]  # fmt: skip
    rows = []
    for row in report["rows"]:
        profile = row["profile"] or {}
        params = profile.get("params")
        rows.append([
            row["arm"],
            row["model"] or "-",
            "-" if row["steps"] is None else str(row["steps"]),
            _number(params / 1e6 if params is not None else None),
            _number(profile.get("gmacs")),
            _number(profile.get("gmacs_torch")),
            _number(profile.get("latency_ms"), 1),
            _duration(row["train_seconds"]),
            _metric(row),
            _printed(row["paper_metric"]),
            "; ".join(row["errors"]) or "ok",
        ])  # fmt: skip
    return title, headers, rows


def _profile_table(report: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    size = "x".join(map(str, report["input_size"]))
    table_name = f" ({report['paper_table']})" if report["paper_table"] else ""
    title = f"{report['study']}{table_name}: {report['title']}; {report['task']} head at {size}"
    convention = report["convention"]
    headers = [
        "arm", "model", "params (M)", "paper params (M)", f"GMACs {convention}", "paper GMACs", "GMACs torch",
        "latency (ms)", "paper source",
    ]  # fmt: skip
    rows = []
    for row in report["rows"]:
        profile = row["profile"]
        paper = profile["paper"] or {}
        rows.append([
            row["arm"],
            profile["model"],
            _number(profile["params"] / 1e6),
            _printed(paper.get("params_m")),
            _number(profile["gmacs"]),
            row["paper_gmacs_printed"] or _printed(paper.get("gmacs")),
            _number(profile["gmacs_torch"]),
            _number(profile["latency_ms"], 1),
            paper.get("source", "-"),
        ])  # fmt: skip
    return title, headers, rows


def markdown(report: dict[str, Any]) -> str:
    title, headers, rows = table(report)
    lines = [f"## {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    if report.get("verdicts"):
        lines += ["", *(f"- {line}" for line in report["verdicts"])]
    if report["notes"]:
        lines += ["", *(f"- {note}" for note in report["notes"])]
    return "\n".join(lines) + "\n"


def write_report(folder: Path, report: dict[str, Any]) -> None:
    """study.json (everything, for tools) and study.md (the table, verdicts and notes, to paste)."""
    write_json(folder / "study.json", report)
    write_text(folder / "study.md", markdown(report))
