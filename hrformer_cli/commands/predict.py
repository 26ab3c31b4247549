"""`hrformer predict`: run a model on images, folders, globs, list files, videos or a webcam."""

from __future__ import annotations

import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hrformer_core import __version__
from hrformer_core.errors import UsageError
from hrformer_core.predict import FrameStream, PredictionWriter, prepare
from hrformer_core.tasks import PredictOptions, known_tasks
from hrformer_core.utils.io import unique_dir

from ..output import console, err_console


def predict(
    sources: list[str] = typer.Argument(
        ..., help="Images, folders (recursive), globs, .txt lists (one path per line), videos or webcam:N."
    ),
    weights: str = typer.Option(
        None,
        "--weights",
        "-w",
        help="Our .safetensors, a run folder, last (the newest run), an official/mmpose .pth, or hf://ORG/NAME[@REV].",
    ),
    task: str = typer.Option(None, "--task", help="Expected task (pose, seg or cls); checked against the weights."),
    boxes: Path = typer.Option(
        None, "--boxes", help="Pose: person boxes, a COCO detections JSON (image_id, bbox, score)."
    ),
    boxes_annotations: Path = typer.Option(
        None, "--boxes-annotations", help="COCO annotation JSON mapping file names to the boxes' image ids."
    ),
    detector: str = typer.Option(
        None,
        "--detector",
        help="Pose: hog (the default, OpenCV's HOG people detector), whole-image or module:callable -> boxes, scores.",
    ),
    box_threshold: float = typer.Option(None, "--box-threshold", help="Pose: drop boxes scoring below this [0.3]."),
    kpt_threshold: float = typer.Option(None, "--kpt-threshold", help="Pose: draw keypoints above this [0.3]."),
    flip: bool = typer.Option(False, "--flip", help="Flip test: average with the mirrored crop's heatmaps."),
    input_size: str = typer.Option(None, "--input-size", help="Model input HxW; default: as trained (pose 256x192)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Crops or images per forward pass."),
    seg_mode: str = typer.Option(None, "--seg-mode", help="Segmentation: whole (resized, default) or slide."),
    topk: int = typer.Option(None, "--topk", help="Classification: how many labels to report [5]."),
    class_names: Path = typer.Option(None, "--class-names", help="Text file, one class name per line."),
    keypoints: str = typer.Option(None, "--keypoints", help="Keypoint set: coco17, a .yaml or a COCO .json."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    project: Path = typer.Option(Path("runs/predict"), "--project", help="Parent folder of the output folder."),
    name: str = typer.Option(None, "--name", help="Output folder name (default: a timestamp); never overwritten."),
    no_save: bool = typer.Option(False, "--no-save", help="Print results only; write no files."),
    compile_model: bool = typer.Option(
        False,
        "--compile",
        help="torch.compile the model with frozen weights (same outputs; a minute or more to start, faster after).",
    ),
) -> None:
    """Predict keypoints (top-down), segmentation masks or labels, with annotated copies and JSON."""
    if task is not None and task not in known_tasks():
        raise UsageError(f"--task {task!r}: expected one of {', '.join(known_tasks())}")
    task_options = {
        key: value
        for key, value in dict(
            boxes=boxes,
            boxes_annotations=boxes_annotations,
            detector=detector,
            box_threshold=box_threshold,
            kpt_threshold=kpt_threshold,
            keypoints=keypoints,
            seg_mode=seg_mode,
            topk=topk,
            class_names=class_names,
        ).items()
        if value is not None
    }
    options = PredictOptions(input_size, batch_size, flip, compile_model, task_options)
    stream = FrameStream(sources)  # missing sources fail here, before the model loads
    session = prepare(weights, options, device, expected_task=task)
    for note in session.predictor.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    folder_name = name or datetime.now().strftime("%Y%m%d-%H%M%S")
    writer: PredictionWriter | None = None  # created with the first result: no empty folders for empty inputs
    images = 0
    counts: dict[str, int] = {}
    interrupted = False
    start = time.perf_counter()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, transient=True
    ) as progress:
        bar = progress.add_task("predicting", total=None)
        try:
            for result in session(stream):
                images += 1
                for key, value in result.counts().items():
                    counts[key] = counts.get(key, 0) + value
                shown = "".join(f", {value} {key}" for key, value in counts.items())
                progress.update(bar, description=f"predicting: {images} images{shown}")
                if no_save:
                    console.print(f"{_where(result.frame)}: {result.describe()}", highlight=False, soft_wrap=True)
                    continue
                if writer is None:
                    writer = PredictionWriter(unique_dir(project, folder_name))
                writer.add(result)
        except KeyboardInterrupt:  # how a webcam stream ends: keep everything predicted so far
            interrupted = True
    seconds = time.perf_counter() - start
    if interrupted:
        err_console.print(f"stopped by Ctrl-C after {images} images/frames; writing what was predicted")
    warnings = session.predictor.summary_notes()
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    report = stream.report
    summary: dict[str, Any] = {
        "images": report.images,
        "videos": report.videos,
        "frames": images,
        **counts,
        "skipped": [{"path": p, "reason": why} for p, why in report.skipped],
        "warnings": warnings,
        "seconds": round(seconds, 3),
        "images_per_second": round(images / seconds, 3) if seconds > 0 else None,
    }
    if writer is not None:
        run_options = {
            "sources": sources,
            "flip": flip,
            "batch_size": batch_size,
            "compile": compile_model,
            **{key: str(value) if isinstance(value, Path) else value for key, value in task_options.items()},
        }
        writer.close(
            {
                "weights": session.weights.provenance(),
                "task": session.task.name,
                "input_size": list(session.options.input_size),
                "options": run_options,
                "summary": summary,
                "versions": {"hrformer": __version__, "torch": torch.__version__, "python": platform.python_version()},
            }
        )
    _print_summary(summary, counts, writer.folder if writer else None, session.weights.hub_commit)


def _where(frame: Any) -> str:
    return frame.relative.as_posix() + (f"#{frame.frame_index}" if frame.is_video else "")


def _print_summary(
    summary: dict[str, Any], counts: dict[str, int], folder: Path | None, hub_commit: str | None
) -> None:
    table = Table(title="Prediction", show_header=False)
    table.add_row("images", str(summary["images"]))
    if summary["videos"]:
        table.add_row("videos", str(summary["videos"]))
        table.add_row("frames (images + video frames)", str(summary["frames"]))
    for key, value in counts.items():
        table.add_row(f"{key} found", str(value))
    if summary["skipped"]:
        table.add_row("skipped files", str(len(summary["skipped"])))
    rate = summary["images_per_second"]
    table.add_row("images/s", f"{rate:.2f}" if rate is not None else "-")
    if hub_commit:
        table.add_row("hub commit", hub_commit)
    table.add_row("output", str(folder) if folder is not None else "(not saved)")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
