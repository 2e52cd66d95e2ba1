"""Names that become paths, output-folder locks, unreachable services and damaged experiment folders."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from damagemap.locks import LOCK_NAME
from damagemap.mapping.checkpoint import WORK_DIRNAME
from tests.robustness.conftest import MAP, assert_clean_failure, final_outputs, rgb_scene, run_cli, snapshot

EXPERIMENT = ["--protocol", "lodo", "-k", "2", "--no-cache"]


def test_recipe_name_that_is_a_path_never_writes_outside_out(ws, tmp_path) -> None:
    out = tmp_path / "runs" / "exp"
    before = snapshot(tmp_path)
    for name in ("../../escaped", "/tmp/escaped-abs"):
        result = run_cli(
            ["experiment", ws.recipe, "--data", ws.data, "--out", out, "--set", f"name={name}", *EXPERIMENT]
        )
        assert_clean_failure(result, 4, "name", "not a plain name")
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "escaped").exists()


def test_duplicate_stems_get_distinct_outputs(ws, tmp_path) -> None:
    images = sorted((ws.data / "north" / "images").iterdir())
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(images[0].read_bytes())
    (tmp_path / "b" / "x.png").write_bytes(images[1].read_bytes())
    result = run_cli(["predict", ws.model, tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "--out", tmp_path / "o"])
    assert result.exit_code == 0, result.output
    assert "renamed" in result.output
    masks = sorted(p.name for p in (tmp_path / "o").glob("*_mask.png"))
    assert masks == ["x-2_mask.png", "x_mask.png"]


def _lock_for(pid: int, folder) -> None:
    lock = folder / WORK_DIRNAME / LOCK_NAME
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "then"}))


def test_map_on_a_folder_held_by_a_live_run_is_refused(ws, tmp_path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = tmp_path / "out"
        _lock_for(holder.pid, out)
        result = run_cli(["map", ws.model, rgb_scene(tmp_path / "s.tif"), "--out", out, *MAP])
        assert_clean_failure(result, 4, str(out), f"pid {holder.pid}")
        assert final_outputs(out) == []
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_run_is_taken_over(ws, tmp_path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    _lock_for(dead.pid, out)
    result = run_cli(["map", ws.model, rgb_scene(tmp_path / "s.tif"), "--out", out, *MAP])
    assert result.exit_code == 0, result.output
    assert (out / "damage_class.tif").is_file()
    assert not (out / WORK_DIRNAME / LOCK_NAME).exists()


def test_unreachable_scheduler_is_one_line_within_the_timeout(ws, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    t = time.perf_counter()
    result = run_cli(
        ["map", ws.model, rgb_scene(tmp_path / "s.tif"), "--out", tmp_path / "out", *MAP,
         "--scheduler", f"tcp://127.0.0.1:{port}", "--scheduler-timeout", "1"]
    )  # fmt: skip
    assert_clean_failure(result, 4, "--scheduler", "--scheduler-timeout")
    assert time.perf_counter() - t < 30
    assert final_outputs(tmp_path / "out") == []


def test_truncated_fold_record_is_recomputed_and_said(ws, tmp_path) -> None:
    out = tmp_path / "exp"
    args = ["experiment", ws.recipe, "--data", ws.data, "--out", out, *EXPERIMENT]
    first = run_cli(args)
    assert first.exit_code == 0, first.output
    folds = sorted((out / "folds").rglob("*.json"))
    assert folds
    whole = folds[0].read_text()
    folds[0].write_text(whole[: len(whole) // 2])
    again = run_cli(args)
    assert again.exit_code == 0, again.output
    assert "unreadable fold record" in again.output
    assert json.loads(folds[0].read_text())["scores"] == json.loads(whole)["scores"]


def test_two_dask_workers_give_the_pixels_of_one_process(ws, tmp_path) -> None:
    import numpy as np
    import rasterio

    scene = rgb_scene(tmp_path / "s.tif", size=160)
    one = run_cli(["map", ws.model, scene, "--out", tmp_path / "one", *MAP])
    two = run_cli(["map", ws.model, scene, "--out", tmp_path / "two", *MAP, "--workers", "2"])
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    rasters = sorted(p.name for p in (tmp_path / "one").glob("*.tif"))
    assert rasters
    for name in rasters:
        with rasterio.open(tmp_path / "one" / name) as a, rasterio.open(tmp_path / "two" / name) as b:
            np.testing.assert_array_equal(a.read(), b.read(), err_msg=name)
    summary = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "two")]
    assert summary[0]["stats"] == summary[1]["stats"]  # mean probability included, to the last bit


def test_footprints_outside_the_scene_give_an_empty_building_set_and_a_warning(ws, tmp_path) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    far = tmp_path / "far.gpkg"
    gpd.GeoDataFrame({"id": [1]}, geometry=[box(0, 0, 10, 10)], crs="EPSG:32616").to_file(far)
    args = ["map", ws.model, rgb_scene(tmp_path / "s.tif"), "--out", tmp_path / "out", *MAP, "--footprints", far]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    assert "none of the 1 footprints overlaps the scene" in result.output
    assert run_cli([*args, "--overwrite"]).exit_code == 0
