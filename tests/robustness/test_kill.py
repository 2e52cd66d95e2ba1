"""A killed ``train`` never leaves a model folder that looks complete (map/experiment: see their own kill tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from damagemap.artifact import load_model
from tests.robustness.conftest import RECIPE

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("delay", [2.5])
def test_killed_training_leaves_no_complete_looking_model(ws, tmp_path, delay) -> None:
    recipe = tmp_path / "long.yaml"
    recipe.write_text(RECIPE.replace("epochs: 1", "epochs: 12"))
    out = tmp_path / "model"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DAMAGEMAP_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "damagemap", "train", str(recipe), "--data", str(ws.data), "--out", str(out)]
    proc = subprocess.Popen([*cmd, "--no-cache"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if finished or (out / "manifest.json").exists():
        load_model(out)  # whatever carries a manifest must be whole: every file there and its sha256 right
    else:
        assert not (out / "head.safetensors").exists()
    rerun = subprocess.run([*cmd, "--no-cache"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    load_model(out)
