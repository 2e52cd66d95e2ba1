"""The end-to-end demo at a reduced size: every output exists, is georeferenced like the scene,
and the held-out buildings are classified better than the majority-class baseline."""

from __future__ import annotations

import json

import pyogrio
import pytest
import rasterio

from damagemap.demo import building_accuracy, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(out, size=512, epochs=8, quiet=True)  # ~15 s on 2 idle cores


def test_outputs_exist_and_match_the_scene(demo):
    result = demo
    out = result.out_dir
    assert (out / "model" / "manifest.json").is_file()
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert manifest["encoder"]["name"] == "efficientnet-lite0" and manifest["input"]["mode"] == "tile"
    for name in (
        "damage_probability.tif",
        "damage_class.tif",
        "uncertainty.tif",
        "damage.gpkg",
        "buildings.csv",
        "zones.csv",
        "summary.json",
    ):
        assert (out / "map" / name).is_file(), name
    assert result.report == out / "report.html" and result.report.is_file()
    with rasterio.open(result.event.scene) as scene:
        for cog in (result.mapping.probability, result.mapping.damage_class, result.mapping.uncertainty):
            with rasterio.open(cog) as src:
                assert src.crs == scene.crs and src.transform == scene.transform
                assert (src.width, src.height) == (scene.width, scene.height) and src.overviews(1)
    layers = {name for name, _ in pyogrio.list_layers(result.mapping.vectors)}
    assert {"buildings", "zones"} <= layers
    assert result.mapping.stats["buildings"] == result.event.n_buildings


def test_the_demo_suggests_tiles_outside_the_drawn_polygons(demo):
    import geopandas as gpd

    result = demo
    tiles = gpd.read_file(result.suggestions, layer="suggested_tiles")
    labels = gpd.read_file(result.event.labels).to_crs(tiles.crs)
    assert len(tiles) > 0 and tiles["rank"].tolist() == list(range(1, len(tiles) + 1))
    assert not tiles.intersects(labels.union_all()).any() and result.suggestions.with_suffix(".png").is_file()


def test_held_out_buildings_beat_the_majority_baseline(demo):
    result = demo
    b = result.buildings
    assert b["part"] == "east" and b["buildings"] >= 20
    assert b["accuracy"] > b["majority_baseline"]
    assert b == building_accuracy(result.mapping.buildings_csv, result.event.footprints, "east")
    page = result.report.read_text()
    assert "buildings vs truth (held-out east)" in page and "majority baseline" in page


def test_cli_help_describes_the_demo():
    from typer.testing import CliRunner

    from damagemap.cli import app

    res = CliRunner().invoke(app, ["demo", "--help"])
    assert res.exit_code == 0
    assert "report.html" in res.output and "--size" in res.output and "--epochs" in res.output
