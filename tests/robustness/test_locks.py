"""Defect 2: one run per output folder; a second is refused naming folder and owner; a stale lock is recovered."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from damagemap.locks import LOCK_NAME, sibling_lock
from damagemap.mapping.checkpoint import WORK_DIRNAME
from tests.robustness.conftest import MAP, assert_clean_failure, final_outputs, rgb_scene, run_cli, snapshot


@pytest.fixture
def live_pid():
    """The pid of a live process other than this one (a lock of this pid would count as ours)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def write_lock(path, pid):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00"}))


def test_map_on_a_folder_in_use_is_refused(ws, tmp_path, live_pid):
    scene = rgb_scene(tmp_path / "scene.tif")
    out = tmp_path / "out"
    lock = out / WORK_DIRNAME / LOCK_NAME
    write_lock(lock, live_pid)
    before = snapshot(tmp_path)
    result = run_cli(["map", ws.model, scene, "--out", out, *MAP])
    assert_clean_failure(
        result, 4, str(out), "in use by another damagemap run", f"pid {live_pid}", socket.gethostname()
    )
    assert snapshot(tmp_path) == before and final_outputs(out) == []


def test_map_lock_held_in_process_refuses_a_different_threshold(ws, tmp_path, live_pid):
    """Same folder, other parameters: still the lock's refusal, and the folder is left as it was."""
    scene = rgb_scene(tmp_path / "scene.tif")
    out = tmp_path / "out"
    write_lock(out / WORK_DIRNAME / LOCK_NAME, live_pid)
    result = run_cli(["map", ws.model, scene, "--out", out, *MAP, "--threshold", "0.3"])
    assert_clean_failure(result, 4, str(out), f"pid {live_pid}")
    assert (out / WORK_DIRNAME / LOCK_NAME).is_file() and final_outputs(out) == []


def test_experiment_on_a_folder_in_use_is_refused(ws, tmp_path, live_pid):
    out = tmp_path / "exp"
    write_lock(out / LOCK_NAME, live_pid)
    before = snapshot(tmp_path)
    result = run_cli(["experiment", ws.recipe, "--data", ws.data, "--out", out, "--no-cache", "-k", "2"])
    assert_clean_failure(result, 4, str(out), f"pid {live_pid}")
    assert snapshot(tmp_path) == before


def test_train_on_a_model_folder_being_written_is_refused_before_training(ws, tmp_path, live_pid):
    out = tmp_path / "model"
    write_lock(sibling_lock(out), live_pid)
    before = snapshot(tmp_path)
    started = time.perf_counter()
    result = run_cli(["train", ws.recipe, "--data", ws.data, "--domains", "north", "--out", out, "--no-cache"])
    assert_clean_failure(result, 4, str(out), f"pid {live_pid}")
    assert "trained" not in result.output and time.perf_counter() - started < 5  # refused before training
    assert snapshot(tmp_path) == before and not out.exists()


def test_stale_map_lock_is_recovered_with_a_warning(ws, tmp_path):
    scene = rgb_scene(tmp_path / "scene.tif")
    out = tmp_path / "out"
    pid = dead_pid()
    write_lock(out / WORK_DIRNAME / LOCK_NAME, pid)
    result = run_cli(["map", ws.model, scene, "--out", out, *MAP])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning:" in text and "taking over the lock" in text and str(out) in text
    assert (out / "damage_class.tif").is_file() and not (out / WORK_DIRNAME).exists()


def test_stale_experiment_lock_is_recovered(ws, tmp_path):
    out = tmp_path / "exp"
    write_lock(out / LOCK_NAME, dead_pid())
    args = ["experiment", ws.recipe, "--data", ws.data, "--domains", "north", "--protocol", "kfold", "-k", "2"]
    result = run_cli([*args, "--out", out, "--no-cache"])
    assert result.exit_code == 0, result.output
    assert "taking over the lock" in " ".join(result.output.split())
    assert (out / "results.json").is_file() and not (out / LOCK_NAME).exists()
