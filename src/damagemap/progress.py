"""Progress of long-running commands on stderr: rich bars on a terminal, plain lines otherwise.

:func:`make_progress` is the one place that decides. On an interactive terminal it returns a
rich :class:`~rich.progress.Progress` (live bars). When stderr is not a terminal (a pipe, a
log file, CI) it returns a :class:`LineProgress`: the same object to the library (a
``Progress`` subclass, so ``add_task``/``advance``/``update``/``remove_task``/``task_ids`` and
the context manager work unchanged) that prints one flushed line per report instead, e.g.::

    [damagemap] train: 40/100 (40%) elapsed 0:12 eta 0:18 | loss=0.312

A line is printed when a task starts, when it reaches the next 10 % step (but not within
:attr:`LineProgress.min_interval` seconds of the previous line), at least every
:attr:`LineProgress.heartbeat` seconds while it reports, and when it ends. A task added with
the field ``report_each=True`` (experiment folds, video splits) gets a line for every step.

``--quiet`` (:func:`set_quiet`) or the environment variable ``DAMAGEMAP_NO_PROGRESS`` turn
both off; errors and the commands' final summaries are printed regardless.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

PREFIX = "[damagemap]"
"""Start of every progress line (easy to filter out of a log)."""

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence (``True``) or re-enable progress output for this process (the CLI's ``--quiet``)."""
    global _quiet
    _quiet = bool(quiet)


def progress_enabled() -> bool:
    """Progress is reported unless ``--quiet`` was given or ``DAMAGEMAP_NO_PROGRESS`` is set."""
    return not _quiet and not os.environ.get("DAMAGEMAP_NO_PROGRESS")


def make_progress(enabled: bool | None = None) -> Progress:
    """The progress display of a long-running command, on stderr.

    Args:
        enabled: ``False``: report nothing; ``True``: report even under ``--quiet`` /
            ``DAMAGEMAP_NO_PROGRESS``; ``None`` (default): report unless those are set.

    Returns:
        rich bars when stderr is an interactive terminal, else a :class:`LineProgress`;
        a disabled (silent) rich ``Progress`` when not enabled.
    """
    show = progress_enabled() if enabled is None else enabled
    if show and not sys.stderr.isatty():
        return LineProgress()
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        disable=not show,
        transient=False,
    )


def format_duration(seconds: float) -> str:
    """``m:ss`` below an hour, else ``h:mm:ss`` (whole seconds, rounded down)."""
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class _Reported:
    """When and at which 10 % step a task last got a line; whether its end line is out."""

    time: float
    step: int
    completed: float
    ended: bool = False


class LineProgress(Progress):
    """A rich ``Progress`` that never draws bars but prints plain progress lines (module docstring).

    Args:
        stream: where lines go (default: ``sys.stderr`` at the time of each line).
        get_time: the clock (seconds; default ``time.monotonic`` via rich), for tests.
        min_interval: seconds that must pass after a line before a 10 % step gets the next one.
        heartbeat: seconds after which a task that reports gets a line even without a new step.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        get_time: Callable[[], float] | None = None,
        min_interval: float = 2.0,
        heartbeat: float = 60.0,
    ) -> None:
        super().__init__(disable=True, get_time=get_time)
        self.stream = stream
        self.min_interval = min_interval
        self.heartbeat = heartbeat
        self._reported: dict[TaskID, _Reported] = {}

    # -- the methods the library calls ------------------------------------------------------------
    def add_task(
        self,
        description: str,
        start: bool = True,
        total: float | None = 100.0,
        completed: int = 0,
        visible: bool = True,
        **fields: Any,
    ) -> TaskID:
        """Add a task (see :meth:`rich.progress.Progress.add_task`) and print its start line."""
        task_id = super().add_task(description, start, total, completed, visible, **fields)
        self._line(task_id)
        return task_id

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        """Advance a task; print a line when the reporting rule says so."""
        super().advance(task_id, advance)
        self._maybe_line(task_id)

    def update(
        self,
        task_id: TaskID,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        visible: bool | None = None,
        refresh: bool = False,
        **fields: Any,
    ) -> None:
        """Update a task (see :meth:`rich.progress.Progress.update`); print a line when due."""
        super().update(
            task_id,
            total=total,
            completed=completed,
            advance=advance,
            description=description,
            visible=visible,
            refresh=refresh,
            **fields,
        )
        self._maybe_line(task_id)

    def remove_task(self, task_id: TaskID) -> None:
        """Remove a task, printing its end line first if it has not had one."""
        with self._lock:
            known = task_id in self._tasks
        if known:
            self._end_line(task_id)
        super().remove_task(task_id)
        self._reported.pop(task_id, None)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """End lines for tasks still open, unless leaving on an error (then the error speaks)."""
        if exc_type is None:
            for task_id in self.task_ids:
                self._end_line(task_id)
        super().__exit__(exc_type, exc_val, exc_tb)

    # -- the reporting rule -----------------------------------------------------------------------
    def _maybe_line(self, task_id: TaskID) -> None:
        with self._lock:
            task = self._tasks[task_id]
            last = self._reported.get(task_id)
            if last is None or last.ended:
                return
            if task.total is not None and task.completed >= task.total:
                self._line(task_id, end=True)
                return
            since = self.get_time() - last.time
            if task.fields.get("report_each"):
                due = task.completed != last.completed
            else:
                new_step = _step(task.completed, task.total) > last.step
                due = (new_step and since >= self.min_interval) or since >= self.heartbeat
            if due:
                self._line(task_id)

    def _end_line(self, task_id: TaskID) -> None:
        with self._lock:
            last = self._reported.get(task_id)
            if last is not None and not last.ended:
                self._line(task_id, end=True)

    def _line(self, task_id: TaskID, end: bool = False) -> None:
        with self._lock:
            task = self._tasks[task_id]
            self._reported[task_id] = _Reported(self.get_time(), _step(task.completed, task.total), task.completed, end)
            text = f"{PREFIX} {task.description}: {_state(task.completed, task.total, task.elapsed or 0.0, end)}"
            info = str(task.fields.get("info") or "").strip()
            stream = self.stream if self.stream is not None else sys.stderr
            print(text + (f" | {info}" if info else ""), file=stream, flush=True)


def _state(completed: float, total: float | None, elapsed: float, end: bool) -> str:
    """``done/total (pct%) elapsed m:ss eta m:ss``; ``done/? elapsed m:ss`` for an unknown total.

    ETA is the average rate so far; a task that ends before its total says ``ended`` instead.
    """
    if total is None:
        return f"{_count(completed)}/? elapsed {format_duration(elapsed)}" + (" done" if end else "")
    pct = math.floor(100.0 * completed / total) if total else 100
    head = f"{_count(completed)}/{_count(total)} ({pct}%) elapsed {format_duration(elapsed)}"
    if completed >= total:
        return f"{head} eta 0:00"
    if end:
        return f"{head} ended"
    return f"{head} eta {format_duration(elapsed * (total - completed) / completed) if completed > 0 else '-:--'}"


def _step(completed: float, total: float | None) -> int:
    """The 10 % step reached (0-10); always 0 for an unknown or empty total."""
    if not total:
        return 0
    return min(10, math.floor(10 * completed / total + 1e-9))


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
