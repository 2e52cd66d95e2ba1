"""Returning free heap memory: glibc's malloc_trim where it exists, throttled while mapping."""

from __future__ import annotations

import sys

import pytest

from damagemap import heap


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_release_uses_malloc_trim_on_linux():
    assert heap.release_free_heap() is True


def test_release_is_a_no_op_without_glibc(monkeypatch):
    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    try:
        assert heap.release_free_heap() is False
    finally:
        monkeypatch.undo()
        heap._malloc_trim.cache_clear()


def test_trimmer_trims_at_most_once_per_interval(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "release_free_heap", lambda: calls.append(1) or True)
    now = [100.0]
    trimmer = heap.HeapTrimmer(interval=2.0, clock=lambda: now[0])
    for t in (100.5, 101.9):  # within the first interval
        now[0] = t
        trimmer.maybe_trim()
    assert calls == []
    for t in (102.0, 102.1, 103.9, 104.0):
        now[0] = t
        trimmer.maybe_trim()
    assert len(calls) == 2 and trimmer.trims == 2  # at 102.0 and 104.0
