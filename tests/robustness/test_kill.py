"""Kill -9 at a working moment, rerun: map and experiment outputs are byte-identical to an uninterrupted run.

Outputs carry one legitimate time stamp, the run's ``CREATED_UTC`` provenance (a fixed-width
``YYYY-MM-DDTHH:MM:SSZ``, in summary.json, the rasters' tags, the GeoPackage, the reports);
it is blanked in both runs before the bytes are compared, as are the run statistics of
report.html (tiles predicted — none after a resume — and seconds) and the ``seconds`` of fold
records: they describe the run, not the result.
A killed ``train`` leaves no model folder that looks complete, and the rerun recovers its lock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from damagemap.locks import sibling_lock
from damagemap.mapping.checkpoint import WORK_DIRNAME
from tests.robustness.conftest import MAP, final_outputs, read_json, rgb_scene, run_cli

SRC = Path(__file__).resolve().parents[2] / "src"
STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
RUN_STATS = re.compile(rb"(<td>(?:tiles predicted|seconds)</td>\s*<td>)[^<]*(</td>)")


def start(args: list, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["DAMAGEMAP_NO_PROGRESS"] = "1"
    cmd = [sys.executable, "-m", "damagemap", *map(str, args)]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_to_end(args: list, cwd: Path) -> subprocess.CompletedProcess:
    """The run in a fresh process like the killed one: pytest's own torch state (threads) cannot leak in."""
    proc = start(args, cwd)
    _, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", err.decode())


def kill_when(proc: subprocess.Popen, ready, timeout: float = 60.0) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("the run never reached the moment to kill it")


def contents(folder: Path, created: bytes | None) -> dict[str, bytes]:
    """Every final output's bytes, the run's creation stamp blanked; fold records without ``seconds``."""
    out = {}
    for p in final_outputs(folder):
        data = p.read_bytes()
        if created:
            data = data.replace(created, b"X" * len(created))
        if p.name == "report.html":
            data = RUN_STATS.sub(rb"\1-\2", data)
        if p.parent.parent.name == "folds":
            data = json.dumps({k: v for k, v in json.loads(data).items() if k != "seconds"}).encode()
        out[str(p.relative_to(folder))] = data
    return out


def created_utc(folder: Path) -> bytes:
    stamp = read_json(folder / "summary.json")["provenance"]["created_utc"].encode()
    assert STAMP.fullmatch(stamp)
    return stamp


def test_map_killed_then_rerun_is_byte_identical(ws, tmp_path):
    scene = rgb_scene(tmp_path / "scene.tif")
    out = tmp_path / "out"
    args = ["map", ws.model, scene, "--out", out, *MAP]
    reference = run_to_end(args, tmp_path)
    assert reference.returncode == 0, reference.stderr
    expected = contents(out, created_utc(out))
    shutil.rmtree(out)

    work = out / WORK_DIRNAME
    # kill once the block is checkpointed (the rerun resumes from it), or while outputs are assembled
    killed = kill_when(start(args, tmp_path), lambda: any(work.glob("blocks/*.npy")) or any((work / "tmp").glob("*")))
    assert killed, "the map finished before it could be killed"
    assert not (out / "summary.json").exists()
    assert all(p.stat().st_size > 0 for p in final_outputs(out))  # never a partial file under a final name

    again = run_to_end(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert contents(out, created_utc(out)) == expected
    assert not work.exists()


def test_experiment_killed_then_rerun_is_byte_identical(ws, tmp_path):
    out = tmp_path / "exp"
    args = ["experiment", ws.recipe, "--data", ws.data, "--domains", "north", "--protocol", "kfold", "-k", "2"]
    args += ["--out", out, "--no-cache"]
    reference = run_to_end(args, tmp_path)
    assert reference.returncode == 0, reference.stderr
    expected = contents(out, None)
    assert len([k for k in expected if k.startswith("folds")]) == 2
    shutil.rmtree(out)

    killed = kill_when(start(args, tmp_path), lambda: bool(final_outputs(out / "folds")))
    assert killed, "the experiment finished before it could be killed"
    assert not (out / "results.json").exists()
    finished = {p: p.stat().st_mtime_ns for p in final_outputs(out / "folds")}
    assert finished
    for p in finished:
        read_json(p)  # every fold record under its final name is complete

    again = run_to_end(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # reused, not recomputed
    assert contents(out, None) == expected


def test_train_killed_leaves_no_model_that_looks_complete(ws, tmp_path):
    out = tmp_path / "model"
    args = ["train", ws.recipe, "--data", ws.data, "--domains", "north", "--out", out, "--no-cache"]
    lock = sibling_lock(out)
    killed = kill_when(start(args, tmp_path), lock.exists)
    assert killed, "training finished before it could be killed"
    assert not out.exists()  # the model folder appears whole, by one rename, or not at all
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.") and p.suffix == ".tmp"] == []

    again = run_cli(args)
    assert again.exit_code == 0, again.output
    assert "taking over the lock" in " ".join(again.output.split())
    assert {p.name for p in out.iterdir()} == {"head.safetensors", "manifest.json"} and not lock.exists()
