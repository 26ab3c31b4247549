"""`hrformer train`, `hrformer eval` and `hrformer recipes`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from hrformer_core.engine import evaluate, launch_torchrun, list_recipes, load_recipe, train
from hrformer_core.engine.evaluation import EVAL_FLAGS, MetricTable, eval_flag_overrides
from hrformer_core.engine.rundir import RunDir
from hrformer_core.errors import UsageError

from ..output import console
from .report import report_into

OVERRIDES_HELP = "Recipe overrides as dotted key=value, e.g. train.epochs=10 data.root=/data/coco."


def _metrics_table(title: str, metrics: dict) -> Table:
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def print_metric_tables(tables: list[MetricTable]) -> None:
    """The task's per-class (or other) tables, after the summary; a shortened one says what it shows."""
    for spec in tables:
        table = Table(title=spec.title, min_width=len(spec.title) + 4)
        for number, column in enumerate(spec.columns):
            table.add_column(column, justify="left" if number == 0 else "right")
        for number, row in enumerate(spec.rows):
            table.add_row(*row, end_section=spec.gap_after is not None and number == spec.gap_after - 1)
        console.print(table)
        if spec.note:
            console.print(f"({spec.note})", highlight=False, soft_wrap=True)


def _distributed(nproc: int, nnodes: int) -> bool:
    if nproc < 1 or nnodes < 1:
        raise UsageError(f"--nproc {nproc} / --nnodes {nnodes}: expected integers >= 1")
    return nproc * nnodes > 1


def train_command(
    recipe: str = typer.Option(None, "--recipe", "-r", help="Recipe name (see `hrformer recipes`) or .yaml path."),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder exactly where it stopped."),
    project: Path = typer.Option(Path("runs"), "--project", help="Parent folder of run folders."),
    device: str = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: CUDA when available)."),
    nproc: int = typer.Option(1, "--nproc", help="Processes (GPUs) per node; >1 launches torchrun."),
    nnodes: int = typer.Option(1, "--nnodes", help="Number of nodes (torchrun)."),
    node_rank: int = typer.Option(0, "--node-rank", help="This node's rank (torchrun)."),
    master_addr: str = typer.Option(None, "--master-addr", help="Rendezvous host for multi-node runs."),
    master_port: int = typer.Option(None, "--master-port", help="Rendezvous port for multi-node runs."),
) -> None:
    """Train a model from a recipe (the run folder gets weights, metrics, plots and the resolved recipe).

    A run is fixed work: train.max_steps optimiser steps when set (else
    train.epochs epochs), with the learning-rate schedule laid over exactly
    those steps, so a slower machine takes longer but trains the same model.
    train.max_time_minutes is a safety net only: a run it stops says that its
    result is not the recipe's (also in summary.json); --resume finishes it.
    At step 10 the run says when it will not fit train.max_time_minutes.

    Checkpoints (weights/last.safetensors, state.pt) are written at the end of
    every epoch, after every evaluation and, when set, every
    train.checkpoint_interval_steps steps; --resume continues from the last
    one exactly, mid-epoch included.

    Common keys (key=value after the options; `hrformer recipes` lists recipes):
      train.max_steps=N                  run length in steps (overrides epochs)
      train.epochs=N                     run length in epochs
      train.max_time_minutes=M           stop after M minutes (safety net)
      train.eval_interval_steps=N        evaluate every N steps
      train.eval_interval=N              evaluate every N epochs (default 1)
      train.checkpoint_interval_steps=N  also checkpoint every N steps
      train.batch_size=N                 batch per process
      train.workers=N                    DataLoader workers
      train.optimizer.lr=X               peak learning rate (AdamW)
      train.amp=bf16                     mixed precision (off, auto, fp16, bf16)
      train.log_interval=N               log a line every N steps
      train.precise_bn_batches=N         re-estimate BatchNorm statistics on N
                                         training batches before evaluating
      data.root=PATH                     dataset folder (or HRFORMER_COCO)
      eval.batch_size=N                  evaluation batch size
    """
    overrides = list(overrides or [])
    if recipe is None and resume is None:
        raise UsageError("train: give --recipe NAME (see `hrformer recipes`) or --resume RUN_DIR")
    if _distributed(nproc, nnodes):
        argv = ["train"]
        argv += ["--recipe", recipe] if recipe else []
        argv += ["--resume", str(resume)] if resume else []
        argv += ["--project", str(project)] + (["--device", device] if device else []) + overrides
        code = launch_torchrun(argv, nproc, nnodes, node_rank, master_addr, master_port)
        raise typer.Exit(code)
    loaded = None
    if recipe is not None or overrides:
        source = recipe or str(RunDir(resume).recipe)
        loaded = load_recipe(source, overrides)
    result = train(loaded, resume=resume, project=project, device=device)
    console.print(_metrics_table(f"Validation (best epoch {result.best_epoch})", result.metrics))
    print_metric_tables(result.tables)
    console.print(next_steps(result.run_dir), highlight=False, soft_wrap=True)
    report_into(Path(result.run_dir), f"Run {result.run_dir}")
    if result.note:
        console.print(f"[yellow]note:[/] {result.note}", highlight=False, soft_wrap=True)


def next_steps(run_dir: Path) -> str:
    """Where the run is and the exact commands that use it (`--weights last` also finds the newest run)."""
    return "\n".join(
        [
            f"run folder: {run_dir}",
            f"evaluate:   hrformer eval --recipe {run_dir / 'recipe.yaml'} --weights {run_dir}",
            f"predict:    hrformer predict path/to/images --weights {run_dir}",
        ]
    )


def eval_command(
    recipe: str = typer.Option(..., "--recipe", "-r", help="Recipe name or .yaml path (data and eval options)."),
    weights: str = typer.Option(
        ...,
        "--weights",
        "-w",
        help="Our .safetensors, a run folder, last (this recipe's newest run), an official/mmpose .pth or hf://ORG/NAME.",
    ),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
    boxes: str = typer.Option(None, "--boxes", help="Person detections (COCO results JSON), or 'gt'."),
    ms: bool = typer.Option(
        None,
        "--ms/--no-ms",
        help="Multi-scale test (eval.ms: seg's eval.ms_scales); default: the recipe's.",
        show_default=False,
    ),
    flip: bool = typer.Option(
        None,
        "--flip/--no-flip",
        help="Flip test (seg eval.flip, pose eval.flip_test); default: the recipe's.",
        show_default=False,
    ),
    out: Path = typer.Option(None, "--out", help="Output folder (default: a new runs/<task>/<name>-eval)."),
    device: str = typer.Option(None, "--device", help="cpu, cuda or cuda:N."),
    nproc: int = typer.Option(1, "--nproc", help="Processes per node; >1 launches torchrun."),
) -> None:
    """Evaluate weights on the recipe's validation set: metrics (and per-class) tables, metrics.json and the
    task's files (predictions, per-class tables).

    --ms / --flip set the task's evaluation keys (seg: eval.ms, eval.flip; pose: --flip is eval.flip_test);
    a task without such an option refuses the flag.
    """
    overrides = list(overrides or [])
    if boxes is not None:
        overrides.append(f"data.val_boxes={boxes}")
    loaded = load_recipe(recipe, overrides)
    flag_overrides = eval_flag_overrides(loaded, dict(zip(EVAL_FLAGS, (ms, flip), strict=True)))
    if flag_overrides:  # after the key=value ones: a flag wins
        overrides += flag_overrides
        loaded = load_recipe(recipe, overrides)
    if _distributed(nproc, 1):
        argv = ["eval", "--recipe", recipe, "--weights", weights]
        argv += (["--out", str(out)] if out else []) + (["--device", device] if device else []) + overrides
        raise typer.Exit(launch_torchrun(argv, nproc))
    result = evaluate(loaded, weights, out_dir=out, device=device)
    console.print(_metrics_table(f"{loaded.name}: {weights}", result.metrics))
    print_metric_tables(result.tables)
    skipped = len(result.skipped_images)
    note = f" ({skipped} unreadable image(s) left out, listed in metrics.json)" if skipped else ""
    console.print(f"results: {result.folder}{note}", highlight=False, soft_wrap=True)
    report_into(Path(result.folder), f"Evaluation {result.folder}")


def recipes_command() -> None:
    """List the built-in recipes."""
    table = Table(title="Recipes")
    table.add_column("name")
    table.add_column("description")
    for name, description in list_recipes():
        table.add_row(name, description)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("eval")(eval_command)
    app.command("recipes")(recipes_command)
