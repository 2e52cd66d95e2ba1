"""The in-process executor: where the model runs, read-ahead, order of results."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import rasterio

from damagemap.mapping import BrightnessPredictor, MapOptions, execution, map_scene
from damagemap.mapping.execution import LocalExecutor

RASTERS = ("damage_probability.tif", "damage_class.tif", "uncertainty.tif")


@dataclass
class ThreadRecording(BrightnessPredictor):
    """Brightness predictor that records the thread each call runs in; ``device`` as a model's."""

    device: str = "cpu"
    threads: list[str] = field(default_factory=list)

    def __call__(self, tiles):
        self.threads.append(threading.current_thread().name)
        return super().__call__(tiles)


@pytest.mark.parametrize(("device", "expected"), [("cpu", "MainThread"), ("cuda:0", "damagemap-predict_0")])
def test_model_runs_in_the_caller_on_cpu_and_behind_it_on_an_accelerator(device, expected, scene, tmp_path):
    predictor = ThreadRecording(device=device)
    map_scene(predictor, scene, tmp_path / "out", MapOptions(tile=64, overlap=16, block=64, batch=2, grid_m=None))
    assert predictor.threads and set(predictor.threads) == {expected}


def test_both_placements_give_the_same_maps(scene, tmp_path):
    options = MapOptions(tile=64, overlap=16, block=64, batch=2, grid_m=None, vectorize=False)
    for device in ("cpu", "cuda:0"):
        map_scene(ThreadRecording(device=device), scene, tmp_path / device, options)
    for name in RASTERS:
        with rasterio.open(tmp_path / "cpu" / name) as a, rasterio.open(tmp_path / "cuda:0" / name) as b:
            assert np.array_equal(a.read(), b.read()), name


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_reads_run_ahead_by_prefetch_and_results_keep_their_order(device, monkeypatch):
    reads: list[int] = []

    def fake_read(plan, origins, size):
        reads.append(origins[0][0])
        x = np.full((1, 1, size, size), origins[0][0] / 10, np.float32)
        return x, np.ones((1, size, size), bool)

    monkeypatch.setattr(execution, "read_tiles", fake_read)
    jobs = [(None, [(i, 0)], 4, 1) for i in range(6)]
    results = LocalExecutor(ThreadRecording(device=device)).map(iter(jobs), prefetch=2)
    first = next(results)
    time.sleep(0.1)  # let the reader finish what it was given
    assert len(reads) == 3  # prefetch + 1 batches read before the first result is used, not all six
    rest = list(results)
    assert [float(r.probs[0, 0, 0, 0]) for r in [first, *rest]] == pytest.approx([i / 10 for i in range(6)])
    assert sorted(reads) == list(range(6))


@pytest.mark.parametrize(("device", "released"), [("cpu", 1), ("cuda:0", 0)])
def test_cpu_maps_drop_the_gpu_library_pages(device, released, scene, tmp_path, monkeypatch):
    from damagemap.mapping import engine

    calls = []
    monkeypatch.setattr(engine, "release_gpu_library_pages", lambda: calls.append(1) or 0)
    options = MapOptions(tile=64, overlap=16, block=64, batch=2, grid_m=None, vectorize=False)
    map_scene(ThreadRecording(device=device), scene, tmp_path / "out", options)
    assert len(calls) == released


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux only")
@pytest.mark.parametrize(("device", "lowest"), [("cpu", True), ("cuda:0", False)])
def test_on_the_cpu_the_reader_yields_to_the_model(device, lowest, monkeypatch):
    niceness: list[int] = []

    def fake_read(plan, origins, size):
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return np.zeros((1, 1, size, size), np.float32), np.ones((1, size, size), bool)

    monkeypatch.setattr(execution, "read_tiles", fake_read)
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    list(LocalExecutor(ThreadRecording(device=device)).map(iter([(None, [(0, 0)], 4, 1)] * 3)))
    assert niceness == [19 if lowest else own] * 3
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own  # the caller keeps its own
