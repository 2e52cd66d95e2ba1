from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from damagemap.errors import InputError
from damagemap.geo.vector import read_vectors
from damagemap.mapping import BrightnessPredictor, MapOptions, map_scene
from damagemap.mapping.buildings import building_damage
from tests.mapping.rasters import write_uint8

X0, Y0, PX = 500000.0, 4000000.0, 0.5
T = Affine(PX, 0.0, X0, 0.0, -PX, Y0)


def px_box(r0, c0, r1, c1):
    """A footprint covering pixel rows r0:r1, cols c0:c1 exactly (EPSG:32616)."""
    return box(X0 + c0 * PX, Y0 - r1 * PX, X0 + c1 * PX, Y0 - r0 * PX)


def write(path, arr):
    return write_uint8(path, arr, T)


@pytest.fixture
def rasters(tmp_path):
    cls = np.zeros((100, 100), np.uint8)
    prob = np.full((100, 100), 50, np.uint8)
    cls[10:20, 10:20] = 1  # building 0: fully damaged
    prob[10:20, 10:20] = 254
    cls[30:40, 10:15] = 1  # building 1: half damaged
    cls[50:60, 10:15] = 1  # building 2: a quarter damaged (5 of 20 columns... see below)
    cls[80:100, 80:100] = 255  # nodata corner
    prob[80:100, 80:100] = 255
    return write(tmp_path / "cls.tif", cls), write(tmp_path / "prob.tif", prob)


def footprints():
    geoms = [
        px_box(10, 10, 20, 20),  # 0: 100 px, all damaged
        px_box(30, 10, 40, 20),  # 1: 100 px, 50 damaged
        px_box(50, 10, 60, 30),  # 2: 200 px, 50 damaged
        px_box(200, 200, 210, 210),  # 3: outside the scene
        px_box(85, 85, 95, 95),  # 4: only nodata pixels
        box(X0 + 20.1, Y0 - 20.3, X0 + 20.2, Y0 - 20.2),  # 5: smaller than a pixel
        px_box(90, -10, 100, 10),  # 6: half outside the scene (100 px inside)
    ]
    return gpd.GeoDataFrame({"bid": [f"B{i}" for i in range(len(geoms))]}, geometry=geoms, crs="EPSG:32616")


def test_one_row_per_footprint_reprojected_from_wgs84(tmp_path, rasters):
    path = tmp_path / "fp.geojson"
    footprints().to_crs("EPSG:4326").to_file(path)
    fp = read_vectors(path, "EPSG:32616", "footprints")
    out = building_damage(fp, *rasters, [1], fraction_threshold=0.5, id_column="bid", source=path)
    assert len(out) == 7 and out.crs == "EPSG:32616"
    assert out["building_id"].tolist() == [f"B{i}" for i in range(7)]
    assert out["status"].tolist() == ["ok", "ok", "ok", "outside_scene", "nodata", "ok", "ok"]
    assert out["n_pixels"].tolist() == [100, 100, 200, 0, 0, 1, 100]
    np.testing.assert_allclose(out["damaged_fraction"], [1.0, 0.5, 0.25, np.nan, np.nan, 0.0, 0.0])
    np.testing.assert_allclose(out["mean_probability"], [1.0, 50 / 254, 50 / 254, np.nan, np.nan, 50 / 254, 50 / 254])
    assert out["damage_class"].tolist() == [1, 1, 0, -1, -1, 0, 0]
    strict = building_damage(fp, *rasters, [1], fraction_threshold=0.6, id_column="bid")
    assert strict["damage_class"].tolist() == [1, 0, 0, -1, -1, 0, 0]


def test_ids_are_the_id_column_or_the_1_based_row_number(rasters):
    fp = footprints()
    assert building_damage(fp, *rasters, [1])["building_id"].tolist() == list(range(1, 8))
    fp["id"] = np.arange(100, 107)
    assert building_damage(fp, *rasters, [1])["building_id"].tolist() == list(range(1, 8))  # no guessing
    assert building_damage(fp, *rasters, [1], id_column="id")["building_id"].tolist() == list(range(100, 107))
    with pytest.raises(InputError, match="id column 'nope' not found"):
        building_damage(fp, *rasters, [1], id_column="nope", source="fp.gpkg")


def test_map_scene_with_wgs84_footprints(tmp_path, helpers):
    scene = helpers.write_scene(tmp_path / "scene.tif")
    fp = footprints()
    fp.loc[len(fp)] = ["B7", px_box(100, 60, 110, 85)]  # where the brightness crosses 0.5
    fp.to_crs("EPSG:4326").to_file(tmp_path / "fp.geojson")
    res = map_scene(
        BrightnessPredictor(),
        scene,
        tmp_path / "out",
        MapOptions(footprints=tmp_path / "fp.geojson", id_column="bid", tile=64, overlap=16, block=64),
    )
    table = pd.read_csv(res.buildings_csv)
    layer = gpd.read_file(res.vectors, layer="buildings")
    assert len(table) == len(layer) == len(fp) == res.stats["buildings"]
    assert table["building_id"].tolist() == fp["bid"].tolist()
    assert layer.crs == "EPSG:32616"
    with rasterio.open(res.damage_class) as src:
        cls = src.read(1)
    assert table.loc[0, "status"] == "nodata"  # under the scene's nodata box
    expected = (cls[100:110, 60:85] == 1).mean()
    assert 0 < expected < 1 and table.loc[7, "damaged_fraction"] == pytest.approx(expected)
    assert table.loc[3, "status"] == "outside_scene" and np.isnan(table.loc[3, "damaged_fraction"])


def test_footprint_attributes_are_kept_with_clashes_prefixed(rasters):
    fp = footprints()
    fp["status"] = "surveyed"  # clashes with damagemap's column
    fp["fid"] = np.arange(7)  # the GeoPackage's own key
    fp["height_m"] = np.linspace(3, 9, 7)
    table = building_damage(fp, *rasters, [1])
    assert set(table["fp_status"]) == {"surveyed"} and set(table["status"]) <= {"ok", "nodata", "outside_scene"}
    assert table["fp_fid"].tolist() == list(range(7)) and "fid" not in table.columns
    assert table["height_m"].tolist() == pytest.approx(np.linspace(3, 9, 7).tolist())
    assert table["bid"].tolist() == fp["bid"].tolist()
    # lon/lat are the x/y point in WGS 84 (EPSG:32616 zone 16N: around -87°, 36°)
    ok = table["x"].notna()
    back = gpd.GeoSeries(gpd.points_from_xy(table["lon"][ok], table["lat"][ok]), crs=4326).to_crs(32616)
    assert np.allclose(back.x, table["x"][ok], atol=1e-3) and np.allclose(back.y, table["y"][ok], atol=1e-3)
