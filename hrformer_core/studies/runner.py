"""Running a study: every arm with the same recipe, data, seeds and budget, one run after another, resumable.

A study trains in `<project>/ablate/<study>-<task>/`:

```
state.json            the settings and, per (arm, seed), its run folder and status (pending, running, done,
                      failed with its error), per arm its profile and, for --budget-minutes, its step count
<arm>/seed<N>/        the trainer's run folder (fixed per arm and seed, so a rerun finds it)
study.json, study.md  the report
```
Rerunning the same command (or `resume_study(folder)`) skips the runs that are done, resumes a half-finished
one exactly through the trainer's resume, and starts the others; a study with other settings gets a new
folder (`<study>-<task>-2`, ...). A run that fails (out of memory, NaN, a model that does not build) is
recorded with its error and the others still run; Ctrl-C stops the study, which resumes where it stopped.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..engine.distributed import launch_torchrun, read_statuses, resolve_device
from ..engine.recipes import Recipe, load_recipe
from ..engine.rundir import RunDir
from ..engine.steplog import read_steps_csv
from ..engine.trainer import train
from ..errors import TrainingError, UsageError
from ..models import ModelConfig
from ..models.heads import head_spec
from ..models.registry import VARIANTS
from ..models.weights import input_size_of
from ..tasks import get_task, known_tasks
from ..tasks.common import HRFormerTask
from ..utils.console import console
from ..utils.io import unique_dir, write_json
from .catalog import VARIANT_FIELD, Arm, Study, get_study, metric_scale, paper_row
from .measure import measure_step_seconds, profile_config
from .report import write_report
from .stats import summarize, verdict

STATE_FILE = "state.json"
STATE_VERSION = 1
ALL_TASKS = "all"
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


@dataclass
class StudyOptions:
    """How to run a study. At most one of `budget_minutes`, `epochs` and `steps`; none: the recipe's own."""

    task: str | None = None  # a task name, "all", or None for the study's default
    recipe: str | None = None  # default: the task's quick start
    overrides: list[str] = field(default_factory=list)
    budget_minutes: float | None = None
    epochs: int | None = None
    steps: int | None = None
    seeds: int = 2
    profile_only: bool = False
    nproc: int = 1
    device: str | None = None
    project: Path = Path("runs")
    latency: bool = True
    retry_failed: bool = False


@dataclass
class TaskOutcome:
    """One task of a study: its report (and folder), or why it was skipped."""

    study: str
    task: str
    report: dict[str, Any] | None = None
    folder: Path | None = None
    skipped: str | None = None


# --- entry points -----------------------------------------------------------------------------------------


def run_study(name: str, options: StudyOptions) -> list[TaskOutcome]:
    """Run (or with `profile_only`, profile) study `name` on the task(s) `options.task` names."""
    study = get_study(name)
    _check_options(options)
    every_task = options.task == ALL_TASKS
    if every_task and options.recipe:
        raise UsageError(f"--task {ALL_TASKS} and --recipe {options.recipe}: a recipe trains one task; drop one")
    outcomes = []
    for task_name in _task_names(study, options):
        try:
            task = _hrformer_task(study, task_name)
        except UsageError as exc:
            if not every_task:
                raise
            outcomes.append(TaskOutcome(study.name, task_name, skipped=str(exc)))
            continue
        if options.profile_only:
            outcomes.append(_profile_task(study, task, options))
        else:
            outcomes.append(_train_task(study, task, options))
    return outcomes


def resume_study(folder: str | Path, options: StudyOptions | None = None) -> TaskOutcome:
    """Continue the study in `folder` with the settings it was started with (`options` gives only the device,
    latency and retry choices)."""
    folder = Path(folder)
    state = _read_state(folder)
    settings = state["settings"]
    study = get_study(settings["study"])
    task = _hrformer_task(study, settings["task"])
    return _execute(study, task, folder, state, options or StudyOptions())


def study_folder_name(study: str, task: str) -> str:
    return f"{study}-{task}"


# --- choosing tasks ---------------------------------------------------------------------------------------


def _check_options(options: StudyOptions) -> None:
    budgets = [
        flag
        for flag, value in (
            ("--budget-minutes", options.budget_minutes),
            ("--epochs", options.epochs),
            ("--steps", options.steps),
        )
        if value is not None
    ]
    if len(budgets) > 1:
        raise UsageError(f"{' and '.join(budgets)}: give at most one budget")
    checks = (
        ("--seeds", options.seeds, 1),
        ("--nproc", options.nproc, 1),
        ("--epochs", options.epochs, 1),
        ("--steps", options.steps, 1),
    )
    for flag, value, low in checks:
        if value is not None and value < low:
            raise UsageError(f"{flag} {value}: expected an integer >= {low}")
    if options.budget_minutes is not None and not options.budget_minutes > 0:
        raise UsageError(f"--budget-minutes {options.budget_minutes}: expected a positive number of minutes")
    if options.profile_only and (budgets or options.recipe or options.overrides):
        given = [*budgets, *(["--recipe"] if options.recipe else []), *(["overrides"] if options.overrides else [])]
        raise UsageError(f"--profile-only trains nothing: {', '.join(given)} would be ignored; drop them")


def _task_names(study: Study, options: StudyOptions) -> list[str]:
    if options.task == ALL_TASKS:
        return known_tasks()
    if options.task:
        return [options.task]
    if options.recipe:
        return [load_recipe(options.recipe, options.overrides).task]
    return [study.profile_task if options.profile_only else study.train_task]


def _hrformer_task(study: Study, name: str) -> HRFormerTask:
    """The task, if installed, an HRFormer task, and one on which at least two of the study's arms apply."""
    task = get_task(name)  # a task that is not installed says so in one line
    if not isinstance(task, HRFormerTask):
        raise UsageError(f"task {name}: not an HRFormer task, so study {study.name} has no model settings to vary")
    arms = study.arms_for(name)
    if len(arms) < 2:
        others = [f"{arm.name} ({', '.join(arm.tasks or ())})" for arm in study.arms if not arm.applies_to(name)]
        raise UsageError(
            f"study {study.name} compares nothing on task {name}: arms {', '.join(others)} apply to other tasks only"
        )
    return task


def _variant(config: ModelConfig) -> str | None:
    """Which of the paper's T, S, B a model is (by widths, heads and depths), if any."""
    for variant, arch in VARIANTS.items():
        same = (tuple(arch["channels"]), tuple(arch["num_heads"]), tuple(arch["num_modules"]))
        if same == (config.channels, config.num_heads, config.num_modules):
            return variant
    return None


def _recipe_variant(study: Study, task: HRFormerTask, recipe: Recipe) -> str:
    """The recipe model's variant (t, s, b): arms named by variant (`hrnet-{variant}`) need it."""
    config = task.recipe_model_config(recipe)
    variant = _variant(config)
    if variant is None:
        if any(VARIANT_FIELD in str(value) for arm in study.arms for value in arm.model.values()):
            raise UsageError(
                f"model.name={recipe.model.name}: study {study.name} builds its arms from the T, S or B variant of the "
                f"recipe's model, and {config.name} with channels {list(config.channels)} is none of them"
            )
        return ""
    return variant


# --- profile only -----------------------------------------------------------------------------------------


def _profile_task(study: Study, task: HRFormerTask, options: StudyOptions) -> TaskOutcome:
    """Each arm's model for each of the study's variants, with the task's head at the paper's input size."""
    input_hw = tuple(head_spec(task.head).paper_input_size)
    latency_device = _latency_device(options.device) if options.latency else None
    rows = []
    arms = study.arms_for(task.name)
    with StudyProgress(len(arms) * len(study.profile_variants), f"{study.name} · {task.name}") as progress:
        for variant in study.profile_variants:
            for arm in arms:
                progress.phase(f"profiling {arm.name} ({variant.upper()})")
                config = arm.model_config(variant, task.head)
                printed = paper_row(study, arm, variant)
                rows.append({
                    "arm": arm.name, "label": arm.label, "variant": variant,
                    "profile": profile_config(config, input_hw, latency_device),
                    # Where this table prints the FLOPs less precisely than the figure kept (Table 9's 1.8 G).
                    "paper_gmacs_printed": (printed.gmacs_printed or None) if printed else None,
                })  # fmt: skip
                progress.advance()
    report = {
        "kind": "profile",
        "study": study.name,
        "title": study.title,
        "paper_table": study.paper_table,
        "task": task.name,
        "input_size": list(input_hw),
        "convention": rows[0]["profile"]["convention"],
        "latency_device": latency_device,
        "rows": rows,
        "notes": _notes(study, [row["profile"] for row in rows]),
    }
    folder = unique_dir(Path(options.project) / "ablate", f"{study_folder_name(study.name, task.name)}-profile")
    write_report(folder, report)
    return TaskOutcome(study.name, task.name, report, folder)


def _notes(study: Study, profiles: Sequence[dict[str, Any]]) -> list[str]:
    notes = list(study.notes)
    for profile in profiles:
        note = (profile.get("paper") or {}).get("note")
        if note and note not in notes:
            notes.append(note)
    return notes


def _latency_device(device: str | None) -> str:
    return "cuda" if resolve_device(device).type == "cuda" else "cpu"


# --- training ---------------------------------------------------------------------------------------------


def _override_key(token: str) -> str:
    return token.removeprefix("--").partition("=")[0].strip()


def _train_task(study: Study, task: HRFormerTask, options: StudyOptions) -> TaskOutcome:
    source = options.recipe or task.quickstart_recipe
    if source is None:
        raise UsageError(f"task {task.name} has no quick-start recipe: pass --recipe NAME")
    varied = set(study.varied_keys)
    for token in options.overrides:
        if _override_key(token) in varied:
            raise UsageError(
                f"override {token}: {_override_key(token)} is what study {study.name} varies between its arms; drop it"
            )
    base = load_recipe(source, options.overrides)
    if base.task != task.name:
        raise UsageError(f"--recipe {source} trains task {base.task}, not --task {task.name}")
    budget = _budget(options)
    settings = {
        "study": study.name,
        "task": task.name,
        "recipe": str(source),
        "overrides": list(options.overrides),
        "budget": budget,
        "seeds": [base.train.seed + i for i in range(options.seeds)],
        "nproc": options.nproc,
        "variant": _recipe_variant(study, task, base),
    }
    settings = json.loads(json.dumps(settings))
    for arm in study.arms_for(task.name):
        _arm_recipe(settings, arm, settings["seeds"][0], None)  # every arm's recipe is valid before any trains
    folder, state = _open_folder(Path(options.project) / "ablate", study_folder_name(study.name, task.name), settings)
    return _execute(study, task, folder, state, options)


def _budget(options: StudyOptions) -> dict[str, Any]:
    if options.budget_minutes is not None:
        return {"kind": "minutes", "value": float(options.budget_minutes)}
    if options.epochs is not None:
        return {"kind": "epochs", "value": options.epochs}
    if options.steps is not None:
        return {"kind": "steps", "value": options.steps}
    return {"kind": "recipe", "value": None}


def _budget_overrides(budget: dict[str, Any], arm_steps: int | None) -> list[str]:
    kind, value = budget["kind"], budget["value"]
    if kind == "steps":
        return [f"train.max_steps={value}"]
    if kind == "epochs":
        return [f"train.epochs={value}", "train.max_steps=null"]
    if kind == "minutes" and arm_steps is not None:
        return [f"train.max_steps={arm_steps}"]
    return []


def _arm_recipe(settings: dict[str, Any], arm: Arm, seed: int, arm_steps: int | None) -> Recipe:
    # Every arm does the study's fixed work: the recipe's time limit (a quick start's safety net) would only
    # cut some arms short on a busy machine; a user's own train.max_time_minutes= override still applies.
    overrides = ["train.max_time_minutes=null", *settings["overrides"], *arm.overrides(settings["variant"])]
    overrides.append(f"train.seed={seed}")
    return load_recipe(settings["recipe"], overrides + _budget_overrides(settings["budget"], arm_steps))


def _open_folder(parent: Path, name: str, settings: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The folder of an earlier study with exactly these settings, else a new one."""
    pattern = re.compile(rf"{re.escape(name)}(-\d+)?")
    if parent.is_dir():
        for folder in sorted(p for p in parent.iterdir() if p.is_dir() and pattern.fullmatch(p.name)):
            if (folder / STATE_FILE).is_file():
                state = _read_state(folder)
                if state["settings"] == settings:
                    return folder, state
    folder = unique_dir(parent, name)
    return folder, {"version": STATE_VERSION, "settings": settings, "arms": {}, "runs": {}}


def _read_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{folder}: not a study folder (no {STATE_FILE})") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable study state ({exc})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or "settings" not in state:
        raise UsageError(f"{path}: not a study state file of this version ({STATE_VERSION})")
    return state


def _error_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _execute(
    study: Study, task: HRFormerTask, folder: Path, state: dict[str, Any], options: StudyOptions
) -> TaskOutcome:
    """Profile, calibrate and train every (arm, seed) the state does not have yet, then write the report."""
    settings = state["settings"]
    arms = study.arms_for(task.name)
    seeds = settings["seeds"]
    latency_device = _latency_device(options.device) if options.latency else None

    def save() -> None:
        write_json(folder / STATE_FILE, state)

    for arm in arms:
        state["arms"].setdefault(arm.name, {"profile": None, "steps": None, "step_seconds": None, "error": None})
        for seed in seeds:
            key = _run_key(arm.name, seed)
            state["runs"].setdefault(
                key, {"arm": arm.name, "seed": seed, "folder": key, "status": PENDING, "error": None, "result": None}
            )
    save()
    done = sum(run["status"] == DONE for run in state["runs"].values())
    console.print(
        f"study {study.name} on {task.name}: {len(arms)} arms x {len(seeds)} seed(s), recipe {settings['recipe']}, "
        f"budget {_describe_budget(settings['budget'])}; folder {folder}"
        + (f" ({done} of {len(arms) * len(seeds)} runs already done)" if done else ""),
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
    with StudyProgress(len(arms) * len(seeds), f"{study.name} · {task.name}") as progress:
        for arm in arms:
            arm_state = state["arms"][arm.name]
            _prepare_arm(task, settings, arm, arm_state, options, latency_device, progress)
            save()
            for seed in seeds:
                run = state["runs"][_run_key(arm.name, seed)]
                if run["status"] == DONE or (run["status"] == FAILED and not options.retry_failed):
                    progress.advance()
                    continue
                if arm_state["error"] is not None:
                    run.update(status=FAILED, error=arm_state["error"])
                    save()
                    progress.advance()
                    continue
                progress.phase(f"{arm.name} seed {seed}")
                run.update(status=RUNNING, error=None)
                save()
                try:
                    recipe = _arm_recipe(settings, arm, seed, arm_state["steps"])
                    _train_run(recipe, folder / run["folder"], settings["nproc"], options.device, folder, progress)
                    run["result"] = _run_result(folder / run["folder"], task.primary_metric)
                    run["status"] = DONE
                    if not run["result"]["finished"]:
                        run.update(status=FAILED, error=run["result"]["note"] or "the run did not finish its steps")
                # A study of many runs must not lose the others to one run's failure (out of memory, NaN, a
                # model that does not build): the run becomes a row with its error. Ctrl-C still stops it all.
                except Exception as exc:  # noqa: BLE001
                    run.update(status=FAILED, error=_error_line(exc))
                    progress.log(f"{arm.name} seed {seed} failed: {run['error']}")
                save()
                progress.advance()
    report = build_report(study, task, state)
    write_report(folder, report)
    return TaskOutcome(study.name, task.name, report, folder)


def _run_key(arm: str, seed: int) -> str:
    return f"{arm}/seed{seed}"


def _describe_budget(budget: dict[str, Any]) -> str:
    kind, value = budget["kind"], budget["value"]
    if kind == "recipe":
        return "the recipe's own length"
    if kind == "minutes":
        return f"{value:g} min of training steps per run (steps calibrated per arm)"
    return f"{value} {kind}"


def _prepare_arm(
    task: HRFormerTask,
    settings: dict[str, Any],
    arm: Arm,
    arm_state: dict[str, Any],
    options: StudyOptions,
    latency_device: str | None,
    progress: StudyProgress,
) -> None:
    """Measure the arm's model once (kept in the state), and for a time budget its step count."""
    if arm_state["error"] is not None and options.retry_failed:
        arm_state.update(error=None, profile=None)
    if arm_state["error"] is not None:
        return
    try:
        if arm_state["profile"] is None or (latency_device and arm_state["profile"]["latency_ms"] is None):
            progress.phase(f"profiling {arm.name}")
            config = task.recipe_model_config(_arm_recipe(settings, arm, settings["seeds"][0], None))
            arm_state["profile"] = profile_config(config, input_size_of(config), latency_device)
        budget = settings["budget"]
        if budget["kind"] == "minutes" and arm_state["steps"] is None:
            progress.phase(f"timing {arm.name}'s steps")
            recipe = _arm_recipe(settings, arm, settings["seeds"][0], None)
            seconds = measure_step_seconds(recipe, resolve_device(options.device))
            arm_state["step_seconds"] = seconds
            arm_state["steps"] = max(1, int(budget["value"] * 60 / seconds))
    except Exception as exc:  # noqa: BLE001  (as for a run: the arm becomes a row with its error)
        arm_state["error"] = _error_line(exc)
        progress.log(f"{arm.name} failed: {arm_state['error']}")
        return
    if arm_state["steps"] is not None:
        progress.log(
            f"{arm.name}: {arm_state['step_seconds']:.3f} s a step, so {arm_state['steps']} step(s) fill "
            f"{settings['budget']['value']:g} min"
        )


def _train_run(
    recipe: Recipe, run_dir: Path, nproc: int, device: str | None, folder: Path, progress: StudyProgress
) -> None:
    """Train one (arm, seed) into its fixed folder, resuming it exactly when it has a checkpoint."""
    resume = (run_dir / "state.pt").is_file()
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)  # killed before its first checkpoint: nothing in it to resume
    if nproc == 1:
        if resume:
            train(recipe, resume=run_dir, device=device)
        else:
            train(recipe, run_dir=run_dir, device=device)
        return
    name = run_dir.relative_to(folder).as_posix().replace("/", "-")
    recipe_file = recipe.save(folder / "recipes" / f"{name}.yaml")
    where = ["--resume", str(run_dir)] if resume else ["--run-dir", str(run_dir)]
    argv = ["train", "--recipe", str(recipe_file), *where]
    argv += ["--device", device] if device else []
    status_dir = folder / "status" / name
    with progress.paused():
        code = launch_torchrun(argv, nproc, status_dir=status_dir)
    if code:
        errors = [status.get("error") for status in read_statuses(status_dir) if not status.get("ok")]
        raise TrainingError(next((e for e in errors if e), f"torchrun exited with code {code}"))


def _run_result(run_dir: Path, metric: str) -> dict[str, Any]:
    """What the report needs of a finished run, from its summary.json and steps.csv."""
    summary = json.loads(RunDir(run_dir).summary.read_text(encoding="utf-8"))
    value = summary["metrics"].get(metric)
    steps = read_steps_csv(RunDir(run_dir).steps_csv)
    seconds = steps.column("seconds")
    return {
        "metric": value if isinstance(value, int | float) else None,
        "final_loss": steps.last("train_loss") if len(steps) else None,
        "finished": bool(summary["finished"]),
        "steps": summary["step"],
        "total_steps": summary["total_steps"],
        "note": summary.get("note"),
        "train_seconds": sum(seconds),
    }


# --- report -----------------------------------------------------------------------------------------------


def build_report(study: Study, task: HRFormerTask, state: dict[str, Any]) -> dict[str, Any]:
    """The study's rows (one per arm), the paper's numbers beside ours, and the verdict lines."""
    settings = state["settings"]
    metric = task.primary_metric
    scale = metric_scale(metric)
    rows, summaries, datasets = [], {}, []
    for arm in study.arms_for(task.name):
        runs = [state["runs"][_run_key(arm.name, seed)] for seed in settings["seeds"]]
        done = [run for run in runs if run["status"] == DONE]
        values = [run["result"]["metric"] * (scale or 1.0) for run in done if run["result"]["metric"] is not None]
        summary = summarize(values)
        summaries[arm.name] = summary
        arm_state = state["arms"].get(arm.name, {})
        printed = paper_row(study, arm, settings["variant"])
        paper = next((m for m in printed.metrics if m.metric == metric), None) if printed else None
        if paper is not None and paper.dataset not in datasets:
            datasets.append(paper.dataset)
        rows.append({
            "arm": arm.name,
            "label": arm.label,
            "model": (arm_state.get("profile") or {}).get("model"),
            "steps": done[0]["result"]["total_steps"] if done else arm_state.get("steps"),
            "step_seconds": arm_state.get("step_seconds"),
            "profile": arm_state.get("profile"),
            "train_seconds": statistics.fmean(r["result"]["train_seconds"] for r in done) if done else None,
            "values": values,
            "mean": summary.mean if summary else None,
            "std": summary.std if summary else None,
            "paper_metric": paper.printed if paper else None,
            "errors": [f"seed {run['seed']}: {run['error']}" for run in runs if run["status"] == FAILED],
            "runs": [{k: run[k] for k in ("seed", "folder", "status", "error", "result")} for run in runs],
        })  # fmt: skip
    unit = f" {metric} points" if scale else f" {metric}"
    verdicts = [
        verdict(row["arm"], study.baseline, summaries[row["arm"]], summaries.get(study.baseline), unit)
        for row in rows
        if row["arm"] != study.baseline
    ]
    return {
        "kind": "train",
        "study": study.name,
        "title": study.title,
        "paper_table": study.paper_table,
        "task": task.name,
        "metric": metric,
        "metric_scale": scale,  # ours x this = percent, as the paper prints (None: the paper has no such metric)
        "paper_dataset": ", ".join(datasets) or None,
        "settings": settings,
        "rows": rows,
        "verdicts": verdicts,
        "notes": _notes(study, [row["profile"] for row in rows if row["profile"]]),
    }


# --- progress ---------------------------------------------------------------------------------------------


class StudyProgress:
    """A bar over a study's runs. On a terminal it is live (the trainer's own bars nest below it) and pauses
    while torchrun's processes write; elsewhere it prints one line per phase."""

    def __init__(self, total: int, title: str):
        self.title = title
        self.live = console.is_terminal
        self._bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        self._bar = self._bars.add_task(title, total=total)

    def __enter__(self) -> StudyProgress:
        if self.live:
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self._bars.stop()

    def phase(self, text: str) -> None:
        if self.live:
            self._bars.update(self._bar, description=f"{self.title}: {text}")
        else:
            done = int(self._bars.tasks[0].completed)
            self.log(f"[{done}/{int(self._bars.tasks[0].total or 0)}] {self.title}: {text}")

    def advance(self) -> None:
        self._bars.advance(self._bar)

    def log(self, message: str) -> None:
        console.print(message, markup=False, highlight=False, soft_wrap=True)

    @contextmanager
    def paused(self) -> Iterator[None]:
        if self.live:
            self._bars.stop()
        try:
            yield
        finally:
            if self.live:
                self._bars.start()
