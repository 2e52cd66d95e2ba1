"""Rich progress bars shared by long-running commands (quiet under tests and pipes)."""

from __future__ import annotations

import os
import sys

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_enabled() -> bool:
    """Bars show on an interactive terminal unless ``DAMAGEMAP_NO_PROGRESS`` is set."""
    return sys.stderr.isatty() and not os.environ.get("DAMAGEMAP_NO_PROGRESS")


def make_progress(enabled: bool | None = None) -> Progress:
    """A rich progress display on stderr; disabled (no output) when not interactive."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        disable=not (progress_enabled() if enabled is None else enabled),
        transient=False,
    )
