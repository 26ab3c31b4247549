"""`hrformer push`: upload weights with their config and a model card to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from hrformer_core.hub import push as push_to_hub

from ..output import console


def push(
    source: Path = typer.Argument(..., help="A run folder (its best, else last, weights) or our .safetensors file."),
    repo_id: str = typer.Argument(..., help="Hub repository ORG/NAME (created when missing)."),
    private: bool = typer.Option(False, "--private", help="Create the repository as private."),
    revision: str = typer.Option(None, "--revision", help="Branch to push to (created when missing)."),
) -> None:
    """Push model.safetensors, config.json and a README model card; load back with --weights hf://ORG/NAME."""
    summary = push_to_hub(source, repo_id, private=private, revision=revision)
    table = Table(title=f"Pushed to {repo_id}", show_header=False)
    table.add_row("weights", summary["weights"])
    table.add_row("model", f"{summary['variant']} ({summary['task']})")
    table.add_row("parameters", f"{summary['params'] / 1e6:.2f} M")
    table.add_row("commit", str(summary["commit"]))
    table.add_row("url", str(summary["url"]))
    table.add_row("load with", f"--weights hf://{repo_id}" + (f"@{revision}" if revision else ""))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("push")(push)
