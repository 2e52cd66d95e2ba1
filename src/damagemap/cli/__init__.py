"""The ``damagemap`` command line: a thin typer app over the library, one module per command group."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from damagemap import __version__
from damagemap.cli import core, severity, video
from damagemap.cli.common import EXIT_CODES, QuietOpt
from damagemap.progress import set_quiet

EPILOG = (
    "Exit codes:\n\n"
    + "\n".join(f"{code}  {meaning}" for code, meaning in EXIT_CODES.items())
    + "\n\nProgress goes to stderr: bars on a terminal, else plain lines (task, done/total, %, elapsed, ETA) "
    "about every 10 %; --quiet or DAMAGEMAP_NO_PROGRESS=1 turns it off."
)

app = typer.Typer(
    help="Rapid disaster damage mapping with frozen vision foundation models.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
app.add_typer(core.app)
app.add_typer(severity.app)
app.add_typer(video.app, name="video")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"damagemap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    quiet: QuietOpt = False,
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    set_quiet(quiet)  # every invocation: a --quiet of an earlier in-process run does not stick


def main() -> None:  # pragma: no cover - console entry point
    """Run the ``damagemap`` command line."""
    app(prog_name="damagemap")


__all__ = ["app", "main"]
