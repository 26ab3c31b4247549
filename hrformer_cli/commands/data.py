"""`hrformer data`: dataset tools."""

from __future__ import annotations

from pathlib import Path

import typer

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


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
