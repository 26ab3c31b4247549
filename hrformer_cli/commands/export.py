"""`hrformer export`: weights to ONNX, checked against PyTorch with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from hrformer_core.errors import UsageError
from hrformer_core.export import OPSET, TOLERANCE, export_onnx

from ..output import console


def export(
    weights: str = typer.Argument(
        ..., help="Our .safetensors, a run folder, an official/mmpose .pth or hf://ORG/NAME."
    ),
    format: str = typer.Option("onnx", "--format", "-f", help="Export format (onnx)."),
    input_size: str = typer.Option(None, "--input-size", help="Input HxW; default: as trained (pose 256x192)."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Leave the batch axis dynamic."),
    output: Path = typer.Option(None, "--output", "-o", help="Output file (default: beside the weights, .onnx)."),
    opset: int = typer.Option(OPSET, "--opset", help="ONNX opset version."),
    tolerance: float = typer.Option(TOLERANCE, "--tolerance", help="Largest accepted |ONNX - PyTorch| difference."),
) -> None:
    """Export a model to ONNX; fails (and writes nothing) when onnxruntime disagrees with PyTorch."""
    if format != "onnx":
        raise UsageError(f"--format {format!r}: expected onnx")
    report = export_onnx(weights, output, input_size, dynamic_batch, opset, tolerance)
    table = Table(title="ONNX export", show_header=False)
    table.add_row("file", str(report.path))
    table.add_row("task", report.task)
    table.add_row("input", f"{'N' if report.dynamic_batch else 1}x3x{report.input_size[0]}x{report.input_size[1]}")
    table.add_row("outputs", ", ".join(report.outputs))
    table.add_row("opset", str(report.opset))
    if report.max_abs_diff is None:
        table.add_row("parity", "not checked: onnxruntime is not installed (pip install 'hrformer[onnx]')")
    else:
        table.add_row("max |onnxruntime - torch|", f"{report.max_abs_diff:.2e} (batch {report.checked_batch})")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
