"""Runs whose outputs must not depend on how they run: duplicate stems, Dask workers, footprints off the scene."""

from __future__ import annotations

import json

from tests.robustness.conftest import MAP, rgb_scene, run_cli


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
