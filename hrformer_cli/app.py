"""The `hrformer` command: parses arguments, calls hrformer_core, prints with rich."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from hrformer_core.errors import HRFormerError
from hrformer_core.utils.memory import reuse_freed_memory

from .commands import ablate, convert, data, export, predict, profile, push, report, train
from .output import err_console


class _Commands(TyperGroup):
    """Turns the errors a user can cause into one line on stderr and an exit code, never a traceback."""

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except HRFormerError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None


app = typer.Typer(
    name="hrformer",
    cls=_Commands,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from hrformer_core import __version__

        typer.echo(f"hrformer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Train, evaluate, run, profile and study the High-Resolution Transformer (HRFormer)."""
    reuse_freed_memory()


for module in (train, profile, ablate, report, predict, convert, export, push, data):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
