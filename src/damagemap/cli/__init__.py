"""The ``damagemap`` command line: a thin typer app over the library, one module per command group."""

from __future__ import annotations

import typer

from damagemap.cli import core, severity, video
from damagemap.cli.common import QuietOpt
from damagemap.progress import set_quiet

app = typer.Typer(
    help="Rapid disaster damage mapping with frozen vision foundation models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(core.app)
app.add_typer(severity.app)
app.add_typer(video.app, name="video")


@app.callback()
def _root(quiet: QuietOpt = False) -> None:
    set_quiet(quiet)  # every invocation: a --quiet of an earlier in-process run does not stick


def main() -> None:  # pragma: no cover - console entry point
    """Run the ``damagemap`` command line."""
    app()


__all__ = ["app", "main"]
