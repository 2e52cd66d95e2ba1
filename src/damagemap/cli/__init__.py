"""The ``damagemap`` command line: a thin typer app over the library, one module per command group."""

from __future__ import annotations

import typer

from damagemap.cli import core, severity, video

app = typer.Typer(
    help="Rapid disaster damage mapping with frozen vision foundation models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(core.app)
app.add_typer(severity.app)
app.add_typer(video.app, name="video")


def main() -> None:  # pragma: no cover - console entry point
    """Run the ``damagemap`` command line."""
    app()


__all__ = ["app", "main"]
