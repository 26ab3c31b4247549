"""`hrformer data`: dataset tools."""

from __future__ import annotations

from pathlib import Path

import typer

from hrformer_core.tasks.cls.synthetic import CLASSES, generate_synthetic_cls
from hrformer_core.tasks.pose.synthetic import generate_synthetic_pose

from ..output import console

data_app = typer.Typer(help="Dataset tools.", no_args_is_help=True)


@data_app.command("synth-pose")
def synth_pose(
    out: Path = typer.Argument(..., help="Output folder (COCO layout)."),
    train: int = typer.Option(2000, "--train", min=0, help="Training images."),
    val: int = typer.Option(150, "--val", min=0, help="Validation images."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed: the same seed gives the same files."),
) -> None:
    """Write the procedural synthetic people set in the COCO keypoints layout (with detection boxes)."""
    paths = generate_synthetic_pose(out, train, val, seed)
    for key, path in paths.items():
        console.print(f"{key:>15}: {path}")


@data_app.command("synth-seg")
def synth_seg(
    out: Path = typer.Argument(..., help="Output folder ({train,val}/image and {train,val}/label PNGs)."),
    train: int = typer.Option(600, "--train", min=0, help="Training scenes."),
    val: int = typer.Option(60, "--val", min=0, help="Validation scenes."),
    size: int = typer.Option(128, "--size", min=16, help="Scene height and width in pixels."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed: the same seed gives the same files."),
) -> None:
    """Write the procedural street scenes (7 classes) in the segmentation folder layout."""
    from hrformer_core.tasks.seg.synthetic import generate_synthetic_seg

    root = generate_synthetic_seg(out, train, val, seed, (size, size))
    console.print(f"scenes: {root} (train {train}, val {val}; data.layout=folder data.num_classes=7)", highlight=False)


@data_app.command("synth-cls")
def synth_cls(
    out: Path = typer.Argument(..., help="Output folder (ImageNet folder layout: train/, val/, classes.txt)."),
    train: int = typer.Option(200, "--train", min=1, help="Training images per class."),
    val: int = typer.Option(40, "--val", min=1, help="Validation images per class."),
    size: int = typer.Option(64, "--size", min=16, help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed: the same seed gives the same files."),
) -> None:
    """Write the procedural shapes classification set (24 classes: a shape in a layout, on clutter)."""
    root = generate_synthetic_cls(out, train, val, seed, size)
    console.print(f"{len(CLASSES)} classes, {train} train / {val} val images each: {root}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
