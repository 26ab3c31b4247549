"""`hrformer profile`: parameters, MACs under the paper's conventions, latency, throughput and memory."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from hrformer_core.models import list_models
from hrformer_core.models.heads import HEADS
from hrformer_core.models.hrformer import MIN_INPUT_SIZE
from hrformer_core.profiling import CONVENTIONS, VARIANTS, profile_model, resolve_models
from hrformer_core.profiling.bench import DEVICES
from hrformer_core.reporting import Report, profile_records, write_report
from hrformer_core.utils.io import write_json, write_text
from hrformer_core.utils.sizes import parse_size

from ..output import console
from .report import print_written

MIB = 2**20

# str Enums: typer shows the choices in --help and rejects others with exit code 2, listing them.
Variant = Enum("Variant", {name: name for name in [*VARIANTS, "all", *list_models()]}, type=str)
Task = Enum("Task", {name: name for name in HEADS}, type=str)
Device = Enum("Device", {name: name for name in DEVICES}, type=str)


def _pct(value: float) -> str:
    return f"{0.0 if abs(value) < 0.05 else value:+.1f} %"  # no "-0.0 %"


def _variant_table(result: dict[str, Any]) -> Table:
    height, width = result["input_size"]
    table = Table(title=f"{result['model']} · {result['task']} · {height}x{width}", title_justify="left")
    for column in ("", "ours", "paper", "diff"):
        table.add_column(column, justify="left" if not column else "right")
    paper = result["paper"]
    convention = result["paper_convention"]
    table.add_row(
        "parameters (M)",
        f"{result['params']['total'] / 1e6:.3f}",
        str(paper["params_m"]) if paper else "-",
        _pct(paper["params_diff_pct"]) if paper else "",
    )
    table.add_row("GMACs, torch", f"{result['gmacs']['torch']:.3f}")
    table.add_row(
        f"GMACs, {convention} (paper's)",
        f"{result['gmacs'][convention]:.3f}",
        str(paper["gmacs"]) if paper else "-",
        _pct(paper["gmacs_diff_pct"]) if paper else "",
    )
    speed = result["speed"]
    if speed:
        latency, memory, batch = speed["latency"], speed["memory"], result["batch"]
        table.add_row("latency, batch 1, median (ms)", f"{1e3 * latency['median_s']:.1f}")
        table.add_row("latency, batch 1, p90 (ms)", f"{1e3 * latency['p90_s']:.1f}")
        table.add_row(f"throughput, batch {batch} (img/s)", f"{speed['throughput_images_per_s']:.1f}")
        table.add_row(f"peak memory, forward, batch {batch} (MiB)", f"{memory['forward_bytes'] / MIB:.0f}")
        table.add_row(f"peak memory, in all, batch {batch} (MiB)", f"{memory['peak_bytes'] / MIB:.0f}")
    return table


def _notes(results: list[dict[str, Any]]) -> list[str]:
    """Footnotes: the conventions shown, every paper note that applies, and how memory was measured."""
    conventions = dict.fromkeys(["torch", *(r["paper_convention"] for r in results)])
    notes = [f"GMACs {name}: {CONVENTIONS[name]}." for name in conventions]
    notes.append("G = 1e9 multiply-accumulates (what the paper calls FLOPs); diff = (ours - paper) / paper.")
    for result in results:
        if result["paper"] and result["paper"]["note"] and result["paper"]["note"] not in notes:
            notes.append(result["paper"]["note"])
    for result in results:
        if result["speed"]:
            latency = result["speed"]["latency"]
            notes.append(
                f"Latency: median of {latency['runs']} timed forwards after {latency['warmup']} warm-up ones "
                f"on {result['device']}, random weights; peak memory: {result['speed']['memory']['method']}."
            )
            break
    return notes


def _markdown(results: list[dict[str, Any]], notes: list[str]) -> str:
    convention = results[0]["paper_convention"]
    batch = results[0]["batch"]
    header = [
        "model", "task", "input", "params (M)", "paper params (M)", "GMACs torch", f"GMACs {convention}",
        "paper GMACs", "diff GMACs", "latency bs1 (ms)", f"img/s bs{batch}", f"peak MiB bs{batch}",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        paper, speed = r["paper"], r["speed"]
        row = [
            r["model"],
            r["task"],
            "x".join(map(str, r["input_size"])),
            f"{r['params']['total'] / 1e6:.3f}",
            str(paper["params_m"]) if paper else "-",
            f"{r['gmacs']['torch']:.3f}",
            f"{r['gmacs'][convention]:.3f}",
            str(paper["gmacs"]) if paper else "-",
            _pct(paper["gmacs_diff_pct"]) if paper else "-",
            f"{1e3 * speed['latency']['median_s']:.1f}" if speed else "-",
            f"{speed['throughput_images_per_s']:.1f}" if speed else "-",
            f"{speed['memory']['forward_bytes'] / MIB:.0f}" if speed else "-",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"


def profile(
    variant: Variant = typer.Option(
        "all",
        "--variant",
        help="t, s, b, all, or a full model name (seg b = hrformer-b-w15, the paper's Table 5 model).",
    ),
    task: Task = typer.Option("pose", "--task", help="Which head to profile."),
    input_size: str = typer.Option(
        None, "--input-size", help="HxW; default pose 256x192, cls 224x224, seg 1024x1024 (the paper's)."
    ),
    batch: int = typer.Option(None, "--batch", min=1, help="Images per forward for throughput and memory."),
    device: Device = typer.Option("cpu", "--device", help="Where to time the forward passes."),
    json_path: Path = typer.Option(None, "--json", help="Also write the results as JSON here."),
    markdown_path: Path = typer.Option(None, "--markdown", help="Also write a Markdown table here."),
    no_speed: bool = typer.Option(False, "--no-speed", help="Parameters and FLOPs only (skips timing)."),
    report_dir: Path = typer.Option(
        None, "--report", help="Also write report.md/json/html here (latency against GMACs and params)."
    ),
) -> None:
    """Parameters and FLOPs (MACs) under the paper's conventions, beside the paper's figures; latency,
    throughput and peak memory measured on this machine."""
    input_hw = parse_size(input_size, "--input-size", MIN_INPUT_SIZE) if input_size is not None else None
    results = [
        profile_model(name, task.value, input_hw, batch, device.value, speed=not no_speed)
        for name in resolve_models(variant.value, task.value)
    ]
    notes = _notes(results)
    for result in results:
        console.print(_variant_table(result))
    for note in notes:
        console.print(f"[dim]* {note}[/]", highlight=False)
    if json_path is not None:
        write_json(json_path, {"results": results, "notes": notes})
        console.print(f"wrote {json_path}")
    if markdown_path is not None:
        write_text(markdown_path, _markdown(results, notes))
        console.print(f"wrote {markdown_path}")
    if report_dir is not None:
        records = profile_records(results, "hrformer profile")
        print_written(write_report(Report(records, title="HRFormer profile"), report_dir))


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)
