"""The responder's loop through the CLI: train on a scene + drawn polygons → suggest → map."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import rasterio
from shapely.geometry import box
from typer.testing import CliRunner

from damagemap.cli import app

runner = CliRunner()

RECIPE = """
name: loop_tiny
encoder: {name: efficientnet-lite0}
input: {size: 128, mode: tile}
head: {kind: fpn, options: {fpn_channels: 16, embed_channels: 16}}
objectives: {focal: {options: {alpha: 0.5, gamma: 2.0}}}
train: {epochs: 2, batch_size: 8, lr: 0.003}
"""


@pytest.fixture(scope="module")
def real_scene(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    """The real 0.5 m pan GeoTIFF and its 43 footprints, with label polygons drawn over the west half:
    every footprint there as damaged (odd ids) or intact (even ids), and a checked-area polygon."""
    geo = shared_data / "geo"
    scene, footprints = geo / "sample_geotiff.tif", geo / "geotiff_labels.geojson"
    if not scene.is_file() or not footprints.is_file():
        pytest.skip(f"real GeoTIFF / footprints not found in {geo}")
    root = tmp_path_factory.mktemp("loop")
    fp = gpd.read_file(footprints)
    with rasterio.open(scene) as src:
        x0, y0, x1, y1 = src.bounds
    west = box(x0, y0, (x0 + x1) / 2, y1)
    drawn = fp[fp.geometry.centroid.within(west)].reset_index(drop=True)
    labels = gpd.GeoDataFrame(
        {"damage": ["background"] + ["damaged" if i % 2 else "background" for i in range(len(drawn))]},
        geometry=[west, *drawn.geometry],
        crs=fp.crs,
    ).to_crs("EPSG:4326")  # drawn in another CRS than the scene's, as QGIS users often do
    labels.to_file(root / "polygons.gpkg")
    (root / "recipe.yaml").write_text(RECIPE)
    return {
        "root": root,
        "scene": scene,
        "footprints": footprints,
        "labels": root / "polygons.gpkg",
        "recipe": root / "recipe.yaml",
    }


def test_train_suggest_map_on_the_real_scene(real_scene) -> None:
    r = real_scene
    root, scene = r["root"], str(r["scene"])
    common = ["--replicate-single-band", "--scale", "0,1500"]
    result = runner.invoke(
        app,
        [
            "train",
            str(r["recipe"]),
            "--scene",
            scene,
            "--labels",
            str(r["labels"]),
            "--footprints",
            str(r["footprints"]),
            "--out",
            str(root / "model"),
            "--no-cache",
            *common,
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((root / "model" / "manifest.json").read_text())
    assert manifest["metrics"]["best_epoch"] >= 1

    result = runner.invoke(
        app,
        [
            "suggest",
            str(root / "model"),
            scene,
            "--labels",
            str(r["labels"]),
            "--n",
            "4",
            "--out",
            str(root / "next.gpkg"),
            "--json",
            *common,
        ],
    )
    assert result.exit_code == 0, result.output
    tiles = gpd.read_file(root / "next.gpkg", layer="suggested_tiles")
    with rasterio.open(scene) as src:
        crs, bounds = src.crs, box(*src.bounds)
    assert len(tiles) == 4 and list(tiles["rank"]) == [1, 2, 3, 4] and tiles.crs == crs
    assert all(bounds.buffer(1e-6).contains(g) for g in tiles.geometry)
    drawn = gpd.read_file(r["labels"]).to_crs(crs)
    assert not tiles.intersects(drawn.union_all()).any()  # labelled tiles are never suggested again
    assert (root / "next.png").stat().st_size > 0
    payload = json.loads(result.stdout)
    assert [t["rank"] for t in payload["tiles"]] == [1, 2, 3, 4]

    out = root / "map"
    result = runner.invoke(
        app,
        [
            "map",
            str(root / "model"),
            scene,
            "--out",
            str(out),
            "--footprints",
            str(r["footprints"]),
            "--grid-m",
            "100",
            *common,
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("damage_probability.tif", "damage_class.tif", "uncertainty.tif"):
        with rasterio.open(out / name) as dst:
            assert dst.crs == crs and dst.width == 900 and dst.height == 900
    if shutil.which("gdalinfo") and shutil.which("ogrinfo"):  # outputs open in GDAL's own tools
        info = json.loads(
            subprocess.run(
                ["gdalinfo", "-json", str(out / "damage_class.tif")], check=True, capture_output=True, text=True
            ).stdout
        )
        assert info["size"] == [900, 900]
        layers = subprocess.run(
            ["ogrinfo", "-ro", "-so", str(out / "damage.gpkg")], check=True, capture_output=True, text=True
        ).stdout
        assert "buildings" in layers
        subprocess.run(
            ["ogrinfo", "-ro", "-so", str(root / "next.gpkg"), "suggested_tiles"], check=True, capture_output=True
        )


def test_bad_scene_inputs_are_clear_errors_before_training(real_scene, tmp_path) -> None:
    r = real_scene
    with rasterio.open(r["scene"]) as src:
        x1, y1, crs = src.bounds.right, src.bounds.top, src.crs
    far = gpd.GeoDataFrame({"damage": ["damaged"]}, geometry=[box(x1 + 1e4, y1, x1 + 1e4 + 50, y1 + 50)], crs=crs)
    far.to_file(tmp_path / "far.gpkg")  # 10 km east of the scene
    unknown = gpd.read_file(r["labels"]).assign(damage="rubble")
    unknown.to_file(tmp_path / "unknown.gpkg")
    partly = gpd.GeoDataFrame(pd.concat([gpd.read_file(r["labels"]).to_crs(crs), far]), crs=crs)
    partly.to_file(tmp_path / "partly.gpkg")
    far.iloc[:0].to_file(tmp_path / "empty.gpkg")
    far.to_file(tmp_path / "nocrs.shp")
    (tmp_path / "nocrs.prj").unlink()
    cases = [
        (["--labels", str(tmp_path / "partly.gpkg")], "lie outside the scene"),
        (["--labels", str(tmp_path / "empty.gpkg")], "no label polygons"),
        (["--labels", str(tmp_path / "nocrs.shp")], "have no CRS"),
        (["--labels", str(tmp_path / "far.gpkg")], "do not overlap the scene"),
        (["--labels", str(tmp_path / "unknown.gpkg")], "unknown value(s) ['rubble']"),
        (["--labels", str(r["labels"]), "--label-field", "kind"], "class column 'kind' not found"),
        (["--labels", str(r["labels"]), "--labels", str(r["labels"])], "come in pairs"),
    ]
    for args, message in cases:
        result = runner.invoke(
            app,
            [
                "train",
                str(r["recipe"]),
                "--scene",
                str(r["scene"]),
                *args,
                "--out",
                str(tmp_path / "m"),
                "--replicate-single-band",
            ],
        )
        assert result.exit_code != 0 and message in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output and not (tmp_path / "m").exists()
