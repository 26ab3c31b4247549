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
from hrformer_core.data.keypoints import get_keypoint_set
from hrformer_core.errors import UsageError
from hrformer_core.predict.detectors import BoxesFile, build_detector, hog_available
from hrformer_core.predict.outputs import PredictionWriter
from hrformer_core.predict.runner import Predictor, PredictResult
from hrformer_core.predict.sources import FrameStream
from hrformer_core.predict.weights import load_weights
from hrformer_core.utils.io import unique_dir

from ..output import console, err_console

TASKS = ("pose", "seg", "cls")


def _class_names(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    if not path.is_file():
        raise UsageError(f"--class-names {path}: no such file; expected one class name per line")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _describe(result: PredictResult) -> str:
    """One line per image for --no-save."""
    where = result.frame.relative.as_posix() + (f"#{result.frame.frame_index}" if result.frame.is_video else "")
    if result.task == "pose":
        return f"{where}: {result.num_people} people" + (
            f", best score {result.scores.max():.2f}" if result.num_people else ""
        )
    if result.task == "cls":
        return f"{where}: " + ", ".join(f"{name} {p:.2f}" for _, name, p in result.topk)
    assert result.labels is not None
    return f"{where}: {len(set(result.labels.reshape(-1).tolist()))} classes present"


def predict(
    sources: list[str] = typer.Argument(
        ..., help="Images, folders (recursive), globs, .txt lists (one path per line), videos or webcam:N."
    ),
    weights: str = typer.Option(
        None, "--weights", "-w", help="Our .safetensors, a run folder, an official/mmpose .pth, or hf://ORG/NAME[@REV]."
    ),
    task: str = typer.Option(None, "--task", help="Expected task (pose, seg or cls); checked against the weights."),
    boxes: Path = typer.Option(None, "--boxes", help="Person boxes: a COCO detections JSON (image_id, bbox, score)."),
    boxes_annotations: Path = typer.Option(
        None, "--boxes-annotations", help="COCO annotation JSON mapping file names to the boxes' image ids."
    ),
    detector: str = typer.Option(
        None, "--detector", help="whole-image, hog (where OpenCV ships it) or module:callable returning boxes, scores."
    ),
    box_threshold: float = typer.Option(0.3, "--box-threshold", help="Drop person boxes scoring below this."),
    kpt_threshold: float = typer.Option(0.3, "--kpt-threshold", help="Draw keypoints scoring above this."),
    flip: bool = typer.Option(False, "--flip", help="Flip test: average with the mirrored crop's heatmaps."),
    input_size: str = typer.Option(None, "--input-size", help="Model input HxW; default: as trained (pose 256x192)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Crops or images per forward pass."),
    seg_mode: str = typer.Option("whole", "--seg-mode", help="Segmentation: whole (resized) or slide (windows)."),
    topk: int = typer.Option(5, "--topk", help="Classification: how many labels to report."),
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
    if task is not None and task not in TASKS:
        raise UsageError(f"--task {task!r}: expected one of {', '.join(TASKS)}")
    if boxes is not None and detector is not None:
        raise UsageError("--boxes and --detector both given: choose one source of person boxes")
    if boxes_annotations is not None and boxes is None:
        raise UsageError("--boxes-annotations needs --boxes")
    stream = FrameStream(sources)  # missing sources fail here, before the model loads
    loaded = load_weights(weights, device)
    config = loaded.config
    if task is not None and task != config.task:
        raise UsageError(f"--task {task} but the weights {weights} are a {config.task} model")
    boxes_file = BoxesFile(boxes, boxes_annotations) if boxes is not None else None
    if config.task == "pose" and boxes is None and detector is None:
        hog = " (or --detector hog)" if hog_available() else ""
        console.print(
            f"note: no person boxes given, each image is one person box (whole-image); pass --boxes dets.json or "
            f"--detector module:callable{hog}",
            highlight=False,
            soft_wrap=True,
        )
    predictor = Predictor(
        loaded,
        input_size=input_size,
        detector=build_detector(detector),
        boxes=boxes_file,
        box_threshold=box_threshold,
        flip=flip,
        batch_size=batch_size,
        seg_mode=seg_mode,
        topk=topk,
        class_names=_class_names(class_names),
        keypoint_set=get_keypoint_set(keypoints) if keypoints else None,
        compile=compile_model,
    )
    folder_name = name or datetime.now().strftime("%Y%m%d-%H%M%S")
    writer: PredictionWriter | None = None  # created with the first result: no empty folders for empty inputs
    images = people = 0
    interrupted = False
    start = time.perf_counter()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, transient=True
    ) as progress:
        bar = progress.add_task("predicting", total=None)
        try:
            for result in predictor(stream):
                images += 1
                people += result.num_people
                progress.update(bar, description=f"predicting: {images} images, {people} people")
                if no_save:
                    console.print(_describe(result), highlight=False, soft_wrap=True)
                    continue
                if writer is None:
                    writer = PredictionWriter(
                        unique_dir(project, folder_name), predictor.keypoint_set, config.num_classes, kpt_threshold
                    )
                writer.add(result)
        except KeyboardInterrupt:  # how a webcam stream ends: keep everything predicted so far
            interrupted = True
    seconds = time.perf_counter() - start
    if interrupted:
        err_console.print(f"stopped by Ctrl-C after {images} images/frames; writing what was predicted")
    if predictor.unboxed:
        shown = ", ".join(predictor.unboxed[:5]) + (", ..." if len(predictor.unboxed) > 5 else "")
        err_console.print(
            f"[yellow]warning:[/] {boxes} has no boxes for {len(predictor.unboxed)} image(s): {shown}",
            highlight=False,
            soft_wrap=True,
        )
    report = stream.report
    summary: dict[str, Any] = {
        "images": report.images,
        "videos": report.videos,
        "frames": images,
        "people": people if config.task == "pose" else None,
        "skipped": [{"path": p, "reason": why} for p, why in report.skipped],
        "images_without_boxes": predictor.unboxed,
        "seconds": round(seconds, 3),
        "images_per_second": round(images / seconds, 3) if seconds > 0 else None,
    }
    if writer is not None:
        options = {
            "sources": sources,
            "boxes": str(boxes) if boxes else None,
            "detector": detector or ("coco-boxes" if boxes else "whole-image"),
            "box_threshold": box_threshold,
            "kpt_threshold": kpt_threshold,
            "flip": flip,
            "batch_size": batch_size,
            "seg_mode": seg_mode,
        }
        writer.close(
            {
                "weights": loaded.provenance(),
                "task": config.task,
                "input_size": list(predictor.input_size),
                "options": options,
                "summary": summary,
                "versions": {"hrformer": __version__, "torch": torch.__version__, "python": platform.python_version()},
            }
        )
    _print_summary(summary, config.task, writer.folder if writer else None, loaded.hub_commit)


def _print_summary(summary: dict[str, Any], task: str, folder: Path | None, hub_commit: str | None) -> None:
    table = Table(title="Prediction", show_header=False)
    table.add_row("images", str(summary["images"]))
    if summary["videos"]:
        table.add_row("videos", str(summary["videos"]))
        table.add_row("frames (images + video frames)", str(summary["frames"]))
    if task == "pose":
        table.add_row("people found", str(summary["people"]))
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
