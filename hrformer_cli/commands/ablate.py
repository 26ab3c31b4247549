"""`hrformer ablate`: the paper's ablations (and two more) as named studies, run and reported side by side."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from hrformer_core.errors import UsageError
from hrformer_core.studies import STUDIES, StudyOptions, TaskOutcome, get_study, resume_study, run_study, table
from hrformer_core.studies.runner import DONE

from ..output import console
from .report import report_into


def _list_studies() -> None:
    listing = Table(title="Studies (hrformer ablate STUDY)", title_justify="left", show_lines=True)
    listing.add_column("study", no_wrap=True)
    listing.add_column("paper", no_wrap=True)
    listing.add_column("what it compares; arms (their model keys)")
    listing.add_column("default task", no_wrap=True)
    for study in STUDIES.values():
        arms = [
            f"{arm.name}: {arm.describe()}" + (f" ({', '.join(arm.tasks)} only)" if arm.tasks else "")
            for arm in study.arms
        ]
        variants = "/".join(v.upper() for v in study.profile_variants)
        tasks = f"train: {study.train_task}\nprofile: {study.profile_task} {variants}"
        listing.add_row(study.name, study.paper_table or "-", "\n".join([study.title, *arms]), tasks)
    console.print(listing, highlight=False)


def _show(outcome: TaskOutcome) -> None:
    if outcome.skipped is not None:
        console.print(f"{outcome.study} on {outcome.task}: skipped, {outcome.skipped}", highlight=False, soft_wrap=True)
        return
    report = outcome.report
    assert report is not None and outcome.folder is not None
    title, headers, rows = table(report)
    rendered = Table(title=title, title_justify="left")
    for index, header in enumerate(headers):
        rendered.add_column(header, justify="left" if index < 2 else "right")
    for cells in rows:
        rendered.add_row(*cells)
    console.print(rendered)
    for line in report.get("verdicts", []):
        console.print(f"verdict: {line}", highlight=False, soft_wrap=True)
    for note in report["notes"]:
        console.print(f"[dim]* {note}[/]", highlight=False, soft_wrap=True)
    console.print(f"wrote {outcome.folder / 'study.json'} and study.md", highlight=False, soft_wrap=True)
    finished = [
        outcome.folder / run["folder"] for row in report["rows"] for run in row.get("runs", []) if run["status"] == DONE
    ]
    if finished:
        report_into(outcome.folder, f"Study {report['study']} on {report['task']}", finished)


def ablate(
    study: str = typer.Argument(None, help="Study name (see --list).", show_default=False),
    overrides: list[str] = typer.Argument(
        None, help="Recipe overrides (key=value) for every arm, e.g. data.root=/data/coco.", show_default=False
    ),
    list_: bool = typer.Option(False, "--list", help="List the studies, their arms and the paper table."),
    task: str = typer.Option(
        None, "--task", help="pose, seg, cls or all (default: the study's; with --recipe, the recipe's task)."
    ),
    recipe: str = typer.Option(None, "--recipe", "-r", help="Recipe for every arm (default: the task's quick start)."),
    budget_minutes: float = typer.Option(
        None, "--budget-minutes", help="Minutes of training steps per run; each arm's step count is calibrated."
    ),
    epochs: int = typer.Option(None, "--epochs", help="Train every run for this many epochs."),
    steps: int = typer.Option(None, "--steps", help="Train every run for this many steps (train.max_steps)."),
    seeds: int = typer.Option(2, "--seeds", help="Seeds per arm (train.seed, +1, ...): the spread the verdict uses."),
    profile_only: bool = typer.Option(
        False, "--profile-only", help="Parameters, GMACs and latency only, at the paper's input size (no training)."
    ),
    nproc: int = typer.Option(1, "--nproc", help="Processes per run; >1 launches each run through torchrun."),
    device: str = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: CUDA when available)."),
    project: Path = typer.Option(Path("runs"), "--project", help="Studies go to PROJECT/ablate/<study>-<task>."),
    resume: Path = typer.Option(None, "--resume", help="Continue the study in this folder with its own settings."),
    no_latency: bool = typer.Option(False, "--no-latency", help="Skip the latency measurement."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run the failed runs of an earlier study again."),
) -> None:
    """Run a named ablation study: its arms differ in one model setting, and get the same recipe, data, seeds
    and budget, one after another.

    The report has, per arm, parameters, GMACs (the paper's convention and torch's), latency, training time
    and the task metric (AP, mIoU or top-1 in percent) as mean ± std over seeds beside the paper's, and one
    verdict line per arm against the published model: does the difference exceed the seed spread?

    Rerunning the same command continues the study: finished runs are skipped, a half-finished one resumes
    exactly. A run that fails (out of memory, NaN) becomes a row with its error and the others still run.
    """
    if list_:
        _list_studies()
        return
    options = StudyOptions(
        task=task, recipe=recipe, overrides=list(overrides or []), budget_minutes=budget_minutes, epochs=epochs,
        steps=steps, seeds=seeds, profile_only=profile_only, nproc=nproc, device=device, project=project,
        latency=not no_latency, retry_failed=retry_failed,
    )  # fmt: skip
    if resume is not None:
        given = {
            "STUDY": study, "overrides": overrides, "--task": task, "--recipe": recipe,
            "--budget-minutes": budget_minutes, "--epochs": epochs, "--steps": steps, "--profile-only": profile_only,
            "--seeds": seeds != 2 or None, "--nproc": nproc != 1 or None,
        }  # fmt: skip
        extra = [name for name, value in given.items() if value]
        if extra:
            raise UsageError(
                f"--resume {resume} takes the study's settings from its state.json; drop {', '.join(extra)}"
            )
        _show(resume_study(resume, options))
        return
    if study is None:
        raise UsageError(f"give a STUDY, one of {', '.join(STUDIES)} (hrformer ablate --list describes them)")
    for outcome in run_study(get_study(study).name, options):
        _show(outcome)


def register(app: typer.Typer) -> None:
    app.command("ablate")(ablate)
