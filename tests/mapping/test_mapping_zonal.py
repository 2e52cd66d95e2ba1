from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

from damagemap.geo.vector import areas_m2, read_vectors
from damagemap.mapping.zonal import regular_grid, zonal_stats
from tests.mapping.rasters import write_uint8

X0, Y0, PX = 500000.0, 4000000.0, 0.5
T = Affine(PX, 0.0, X0, 0.0, -PX, Y0)
NAN = np.nan


@pytest.fixture
def class_map(tmp_path):
    cls = np.zeros((100, 100), np.uint8)
    cls[0:10, 0:50] = 1  # cell (0,0): 500 damaged pixels
    cls[50:100, 0:50] = 255  # cell (1,0): nodata
    cls[50:100, 50:100] = 1  # cell (1,1): all damaged
    path = tmp_path / "cls.tif"
    return write_uint8(path, cls, T)


def m(x0, y0, x1, y1):
    """A box given in metres from the scene's top-left corner (y downwards)."""
    return box(X0 + x0, Y0 - y1, X0 + x1, Y0 - y0)


@pytest.fixture
def buildings():
    rows = [
        (m(2, 2, 6, 6), "ok", 1),  # cell 0
        (m(10, 10, 14, 14), "ok", 1),  # cell 0
        (m(15, 2, 19, 6), "ok", 0),  # cell 0
        (m(30, 5, 34, 9), "ok", 0),  # cell 1
        (m(24, 15, 34, 19), "ok", 1),  # straddles cells 0|1, representative point in cell 1
        (m(30, 30, 34, 34), "ok", 1),  # cell 3
        (m(40, 40, 44, 44), "nodata", -1),  # cell 3, not assessed
        (m(80, 80, 84, 84), "outside_scene", -1),  # in no zone
    ]
    geoms, status, cls = zip(*rows)
    return gpd.GeoDataFrame({"status": status, "damage_class": cls}, geometry=list(geoms), crs="EPSG:32616")


def test_grid_zonal_counts_by_hand(class_map, buildings):
    grid = regular_grid("EPSG:32616", T, 100, 100, grid_m=25)
    assert len(grid) == 4 and np.allclose(grid.area, 625.0)
    out = zonal_stats(grid, class_map, [1], buildings)
    assert out[["grid_row", "grid_col"]].values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert out["valid_pixels"].tolist() == [2500, 2500, 0, 2500]
    assert out["damaged_pixels"].tolist() == [500, 0, 0, 2500]
    np.testing.assert_allclose(out["damaged_pixel_share"], [0.2, 0.0, NAN, 1.0])
    np.testing.assert_allclose(out["damaged_area_m2"], [125.0, 0.0, 0.0, 625.0])
    assert out["building_count"].tolist() == [3, 2, 0, 2]
    assert out["assessed_building_count"].tolist() == [3, 2, 0, 1]
    assert out["damaged_building_count"].tolist() == [2, 1, 0, 1]
    np.testing.assert_allclose(out["share_damaged"], [2 / 3, 0.5, NAN, 1.0])


def test_given_zones_in_another_crs(tmp_path, class_map, buildings):
    zones = gpd.GeoDataFrame({"name": ["west", "east"]}, geometry=[m(0, 0, 25, 50), m(25, 0, 50, 50)], crs="EPSG:32616")
    zones.to_crs("EPSG:4326").to_file(tmp_path / "zones.geojson")
    read = read_vectors(tmp_path / "zones.geojson", "EPSG:32616", "zones")
    out = zonal_stats(read, class_map, [1], buildings)
    assert out["name"].tolist() == ["west", "east"] and out["zone_id"].tolist() == [0, 1]
    assert out["valid_pixels"].tolist() == [2500, 5000]
    assert out["damaged_pixels"].tolist() == [500, 2500]
    assert out["building_count"].tolist() == [3, 4]
    assert out["damaged_building_count"].tolist() == [2, 2]
    np.testing.assert_allclose(out["share_damaged"], [2 / 3, 2 / 3])


def test_without_buildings_counts_are_nan(class_map):
    out = zonal_stats(regular_grid("EPSG:32616", T, 100, 100, grid_m=50), class_map, [1])
    assert len(out) == 1 and out["damaged_pixels"].tolist() == [3000]
    assert out["building_count"].isna().all() and out["share_damaged"].isna().all()


def test_grid_in_metres_for_a_geographic_scene():
    t = Affine(0.0001, 0.0, -84.5, 0.0, -0.0001, 33.65)  # ~9.3 m × 11.1 m pixels
    grid = regular_grid("EPSG:4326", t, 100, 100, grid_m=250)
    assert grid.crs == "EPSG:4326"
    np.testing.assert_allclose(areas_m2(grid.geometry), 62500.0, rtol=0.01)
    scene_area = areas_m2(gpd.GeoSeries([box(-84.5, 33.64, -84.49, 33.65)], crs="EPSG:4326"))[0]
    assert scene_area / 62500 <= len(grid) <= (np.sqrt(scene_area) / 250 + 2) ** 2
