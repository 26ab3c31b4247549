"""The `hrformer` command: parses arguments, calls hrformer_core, prints with rich."""

from __future__ import annotations

import sys

import typer

from hrformer_core.errors import HRFormerError

from .commands import convert, profile
from .output import err_console

app = typer.Typer(
    name="hrformer",
    help="Train, evaluate, run, profile and study the High-Resolution Transformer (HRFormer).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

for module in (profile, convert):
    module.register(app)


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and an exit code, not a traceback."""
    try:
        app(standalone_mode=False)
    except HRFormerError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive as ClickException subclasses
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
