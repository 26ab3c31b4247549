"""`hrformer convert`: official or mmpose .pth to our safetensors."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from hrformer_core.models.checkpoint import save_state_dict
from hrformer_core.models.convert import convert_state_dict, load_checkpoint_file
from hrformer_core.models.heads import head_spec

from ..output import console


def convert(
    src: Path = typer.Argument(..., help="Official HRFormer or mmpose checkpoint (.pth)."),
    dst: Path = typer.Argument(..., help="Output weights (.safetensors), with the model config in its metadata."),
    model: str = typer.Option(None, "--model", help="Model name (see `hrformer profile`); inferred when omitted."),
) -> None:
    """Convert an official or mmpose checkpoint to hrformer safetensors, reporting what was mapped."""
    state_dict, report = convert_state_dict(load_checkpoint_file(src), model)
    save_state_dict(state_dict, report.config, dst, {"converted_from": src.name, "source_naming": report.source_naming})
    table = Table(title=f"Converted {src.name}", show_header=False)
    table.add_row("source naming", report.source_naming)
    table.add_row("task", report.task)
    table.add_row("model", report.config.name)
    table.add_row(head_spec(report.task).outputs_field.removeprefix("num_"), str(report.config.num_outputs))
    table.add_row("window sizes", ", ".join(map(str, report.config.window_sizes)))
    table.add_row("relative position bias", "on" if report.config.rel_pos_bias else "off")
    table.add_row("tensors written", str(report.mapped))
    table.add_row("q/k/v fused into qkv", str(report.fused_qkv))
    table.add_row("dropped", str(len(report.dropped)))
    table.add_row("output", str(dst))
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
