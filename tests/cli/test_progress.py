"""Plain progress lines when stderr is not a terminal: the reporting rule, on a fake clock."""

from __future__ import annotations

import io
import re
import sys

import pytest
from rich.progress import Progress

from damagemap import progress as progress_module
from damagemap.progress import LineProgress, format_duration, make_progress, set_quiet


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def _line_progress(**kwargs) -> tuple[LineProgress, io.StringIO, Clock]:
    buf, clock = io.StringIO(), Clock()
    return LineProgress(stream=buf, get_time=clock, **kwargs), buf, clock


def test_a_line_at_start_every_10_percent_and_at_the_end() -> None:
    p, buf, clock = _line_progress()
    with p:
        task = p.add_task("train", total=100, info="")
        for _ in range(100):
            clock.now += 0.5  # 50 s in all: a 10 % step every 5 s
            p.advance(task)
    lines = _lines(buf)
    assert lines[0] == "[damagemap] train: 0/100 (0%) elapsed 0:00 eta -:--"
    assert lines[4] == "[damagemap] train: 40/100 (40%) elapsed 0:20 eta 0:30"
    assert lines[-1] == "[damagemap] train: 100/100 (100%) elapsed 0:50 eta 0:00"
    assert [int(re.search(r"\((\d+)%\)", line).group(1)) for line in lines] == list(range(0, 101, 10))


def test_steps_closer_than_min_interval_are_merged_but_the_end_always_prints() -> None:
    p, buf, clock = _line_progress(min_interval=2.0)
    with p:
        task = p.add_task("encode", total=10, info="")
        for _ in range(10):
            clock.now += 0.5  # a 10 % step every 0.5 s: at most one line per 2 s
            p.advance(task)
    assert [re.search(r"(\d+)/10", line).group(1) for line in _lines(buf)] == ["0", "4", "8", "10"]


def test_a_heartbeat_line_when_steps_are_slow_and_info_is_appended() -> None:
    p, buf, clock = _line_progress(heartbeat=60.0)
    with p:
        task = p.add_task("map tiles", total=1000, info="")
        for _ in range(50):  # 5 % in 100 s: no new step, but a line after 60 s
            clock.now += 2.0
            p.update(task, advance=1, info="loss=0.500")
        assert _lines(buf)[-1] == "[damagemap] map tiles: 30/1000 (3%) elapsed 1:00 eta 32:20 | loss=0.500"
    assert len(_lines(buf)) == 3  # start, heartbeat, end
    assert _lines(buf)[-1].endswith("(5%) elapsed 1:40 ended | loss=0.500")  # left before its total


def test_report_each_prints_every_step() -> None:
    p, buf, clock = _line_progress()
    with p:
        task = p.add_task("folds", total=4, info="", report_each=True)
        for i in range(4):
            p.update(task, info=f"plain fold{i}")  # a fold starts: no line
            clock.now += 30
            p.update(task, advance=1, info=f"plain fold{i} done")
    lines = _lines(buf)
    assert len(lines) == 5
    assert lines[2] == "[damagemap] folds: 2/4 (50%) elapsed 1:00 eta 1:00 | plain fold1 done"


def test_unknown_total_has_no_percentage_and_a_task_completed_later_ends() -> None:
    p, buf, clock = _line_progress()
    with p:
        task = p.add_task("predict frames", total=None, info="")
        for _ in range(3):
            clock.now += 1
            p.update(task, advance=1)
        p.update(task, total=3)  # the frame count is known at the end
    assert _lines(buf) == [
        "[damagemap] predict frames: 0/? elapsed 0:00",
        "[damagemap] predict frames: 3/3 (100%) elapsed 0:03 eta 0:00",
    ]


def test_removed_tasks_end_and_an_error_suppresses_end_lines() -> None:
    p, buf, clock = _line_progress()
    with pytest.raises(RuntimeError), p:
        outer = p.add_task("folds", total=2, info="")
        inner = p.add_task("train", total=10, info="")
        p.advance(inner, 5)
        p.remove_task(inner)
        assert p.task_ids == [outer]
        raise RuntimeError("boom")
    assert [line.split(":")[0] for line in _lines(buf)] == ["[damagemap] folds", "[damagemap] train"] + [
        "[damagemap] train"  # its end line, at removal; none for "folds": the run failed
    ]
    assert _lines(buf)[-1] == "[damagemap] train: 5/10 (50%) elapsed 0:00 ended"


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 9.9, 61, 3599, 3600, 7325)] == [
        "0:00",
        "0:09",
        "1:01",
        "59:59",
        "1:00:00",
        "2:02:05",
    ]


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_make_progress_picks_bars_lines_or_nothing(monkeypatch) -> None:
    monkeypatch.delenv("DAMAGEMAP_NO_PROGRESS", raising=False)
    monkeypatch.setattr(progress_module, "_quiet", False)
    monkeypatch.setattr(sys, "stderr", _Stream(tty=False))
    assert isinstance(make_progress(), LineProgress)
    monkeypatch.setattr(sys, "stderr", _Stream(tty=True))
    bars = make_progress()
    assert type(bars) is Progress and not bars.disable
    set_quiet(True)
    assert make_progress().disable and not isinstance(make_progress(), LineProgress)
    assert not make_progress(True).disable  # explicitly enabled wins over --quiet
    set_quiet(False)
    monkeypatch.setenv("DAMAGEMAP_NO_PROGRESS", "1")
    assert make_progress().disable
    monkeypatch.setattr(sys, "stderr", _Stream(tty=False))
    assert make_progress().disable and isinstance(make_progress(True), LineProgress)
    assert make_progress(False).disable
