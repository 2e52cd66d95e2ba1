"""write_synthetic_event: a georeferenced synthetic event (scene, footprints, labels) on disk."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from damagemap.data.geo_labels import read_geotiff_labels
from damagemap.data.synthetic import generate_scene
from damagemap.data.synthetic_geo import RUBBLE_SPILL, write_synthetic_event

SIZE = 256


@pytest.fixture(scope="module")
def event(tmp_path_factory):
    return write_synthetic_event(tmp_path_factory.mktemp("event"), height=SIZE, width=SIZE + 64, seed=3)


def test_scene_is_a_tiled_georeferenced_uint8_rgb_with_nodata(event):
    with rasterio.open(event.scene) as src:
        assert (src.count, src.dtypes[0], src.nodata) == (3, "uint8", 0)
        assert (src.height, src.width) == (SIZE, SIZE + 64)
        assert src.crs.to_epsg() == 32616
        assert tuple(src.transform)[:6] == (0.5, 0.0, 500000.0, 0.0, -0.5, 4000000.0) == event.transform
        assert src.profile["tiled"] and src.overviews(1)
        data, valid = src.read(), src.read_masks(1) > 0
    assert (data[:, 0, -1] == 0).all() and not valid[0, -1]  # the north-east nodata corner
    assert 0 < (~valid).sum() < 0.02 * valid.size
    assert (data[:, valid] >= 1).all()
    truth = generate_scene(SIZE, SIZE + 64, seed=3).image
    np.testing.assert_allclose(data[:, valid] / 254.0, truth[:, valid] + 1 / 254.0, atol=1 / 254.0)


def test_footprints_in_another_crs_with_truth(event):
    fp = gpd.read_file(event.footprints)
    assert fp.crs.to_epsg() == 4326
    assert {"building_id", "damaged", "part"} <= set(fp.columns)
    assert len(fp) == event.n_buildings and int(fp["damaged"].sum()) == event.n_damaged > 0
    sc = generate_scene(SIZE, SIZE + 64, seed=3)
    utm = fp.to_crs(event.crs)
    for f, geom in zip(sc.footprints[:5], utm.geometry):
        y0, x0, h, w = f["bbox"]
        np.testing.assert_allclose(
            geom.bounds,
            (500000 + 0.5 * x0, 4000000 - 0.5 * (y0 + h), 500000 + 0.5 * (x0 + w), 4000000 - 0.5 * y0),
            atol=1e-6,
        )
    split = event.train_window.width
    assert set(fp["part"]) == {"west", "east"}
    assert (
        all(
            (geom.centroid.x < event.train_bounds[2]) == (part == "west")
            for geom, part in zip(utm.geometry, fp["part"])
        )
        and split == (SIZE + 64) // 2
    )


def test_labels_are_west_only_and_true(event):
    labels = gpd.read_file(event.labels)
    assert labels.crs.to_epsg() == 4326 and set(labels["damage"]) == {0, 1}
    assert len(labels) == event.n_labels
    utm = labels.to_crs(event.crs)
    # only rubble of buildings centred in the west reaches (at most half a building + spill) east
    assert utm.total_bounds[2] <= event.train_bounds[2] + (17 + RUBBLE_SPILL + 1) * 0.5
    samples = read_geotiff_labels(event.scene, event.labels, tile=64)
    sc = generate_scene(SIZE, SIZE + 64, seed=3)
    one = zero = rubble = 0
    for s in samples:
        r, c, h, w = s.meta["window"]
        truth = sc.damage[r : r + h, c : c + w]
        assert not truth[s.mask == 0].any()  # what the responder marked undamaged is undamaged
        one += int((s.mask == 1).sum())
        zero += int((s.mask == 0).sum())
        rubble += int(truth[s.mask == 1].sum())
    assert one > 0 and zero > 5 * one
    assert rubble > 0.7 * one  # rubble outlines hold mostly rubble


def test_deterministic(tmp_path, event):
    again = write_synthetic_event(tmp_path, height=SIZE, width=SIZE + 64, seed=3)
    with rasterio.open(event.scene) as a, rasterio.open(again.scene) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    assert gpd.read_file(again.labels).geometry.equals(gpd.read_file(event.labels).geometry)
    assert not list(tmp_path.glob(".*"))  # no temporary files left
