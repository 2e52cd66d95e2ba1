from __future__ import annotations

import numpy as np
import pytest
import rasterio

from damagemap.errors import ConfigError, InputError
from damagemap.geo.raster import open_scene, read_tiles
from damagemap.geo.spec import SceneInputSpec


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found") as err:
        open_scene(tmp_path / "nope.tif", SceneInputSpec(), 1)
    assert err.value.path.name == "nope.tif"


def test_corrupt_file(tmp_path):
    bad = tmp_path / "junk.tif"
    bad.write_bytes(b"II*\x00" + bytes(range(256)) * 20)
    with pytest.raises(InputError, match="cannot open as a raster") as err:
        open_scene(bad, SceneInputSpec(), 1)
    assert err.value.path == bad


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_file(scene, tmp_path, keep):
    data = scene.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match="truncated or corrupt") as err:
        open_scene(cut, SceneInputSpec(), 1)
    assert err.value.path == cut


def test_no_crs(tmp_path, helpers):
    path = helpers.write_scene(tmp_path / "nocrs.tif", crs=None)
    with pytest.raises(InputError, match="no CRS; georeference it first") as err:
        open_scene(path, SceneInputSpec(), 1)
    assert err.value.path == path


def test_band_count_mismatch_names_the_numbers(tmp_path, helpers):
    path = helpers.write_scene(tmp_path / "two.tif", count=2)
    with pytest.raises(InputError, match=r"scene has 2 band\(s\) but the model expects 3"):
        open_scene(path, SceneInputSpec(), 3)
    with pytest.raises(InputError, match=r"band\(s\) \[4\] requested but the scene has only 2"):
        open_scene(path, SceneInputSpec(bands=(1, 4)), 2)
    with pytest.raises(InputError, match="replicate_single_band"):
        open_scene(path, SceneInputSpec(bands=(2,)), 3)


def test_band_selection_order_and_replication(tmp_path, helpers):
    path = helpers.write_scene(tmp_path / "three.tif", count=3, nodata_box=None)
    info = open_scene(path, SceneInputSpec(bands=(3, 1)), 2)
    x, valid = read_tiles(info.plan, [(0, 0)], 32)
    with rasterio.open(path) as src:
        raw = src.read(window=((0, 32), (0, 32)))
    np.testing.assert_allclose(x[0, 0], raw[2] / 255.0, atol=1e-6)
    np.testing.assert_allclose(x[0, 1], raw[0] / 255.0, atol=1e-6)
    rep = open_scene(path, SceneInputSpec(bands=(2,), replicate_single_band=True), 3)
    x, _ = read_tiles(rep.plan, [(0, 0)], 32)
    assert x.shape == (1, 3, 32, 32) and (x[0, 0] == x[0, 2]).all()


def test_scaling_modes(tmp_path, helpers):
    data = np.array([[[0, 1000], [30000, 65535]], [[10, 20], [30, 40]]], dtype=np.uint16)
    path = helpers.write_scene(tmp_path / "u16.tif", data=data, nodata=None)
    plan = open_scene(path, SceneInputSpec(), 2).plan
    x, valid = read_tiles(plan, [(0, 0)], 16)
    assert valid[0, :2, :2].all() and not valid[0, 2:].any() and not valid[0, :, 2:].any()  # padding is nodata
    np.testing.assert_allclose(x[0, 0, :2, :2], data[0] / 65535.0, atol=1e-6)
    plan = open_scene(path, SceneInputSpec(scale=[(0, 30000), (10, 40)]), 2).plan
    x, _ = read_tiles(plan, [(0, 0)], 16)
    np.testing.assert_allclose(x[0, 0, :2, :2], [[0, 1000 / 30000], [1, 1]], atol=1e-6)
    np.testing.assert_allclose(x[0, 1, :2, :2], [[0, 1 / 3], [2 / 3, 1]], atol=1e-6)
    plan = open_scene(path, SceneInputSpec(scale=1000.0), 2).plan
    assert read_tiles(plan, [(0, 0)], 16)[0][0, 1, 1, 1] == pytest.approx(0.04)
    with pytest.raises(ConfigError):
        open_scene(path, SceneInputSpec(scale=[(0, 1)]), 2)
    with pytest.raises(ConfigError):
        SceneInputSpec(scale="minmax")


def test_nodata_value_and_internal_mask(tmp_path, helpers, scene):
    plan = open_scene(scene, SceneInputSpec(), 1).plan
    x, valid = read_tiles(plan, [(0, 0), (100, 200)], 64)
    assert not valid[0, :40, :60].any() and valid[0, 40:, :].all() and valid[0, :, 60:].all()
    assert (x[0, 0, :40, :60] == 0).all() and valid[1].all()
    # an internal mask (no nodata value) is honoured too
    path = helpers.write_scene(tmp_path / "masked.tif", nodata=None, nodata_box=None)
    with rasterio.open(path, "r+") as dst:
        mask = np.full((200, 300), 255, np.uint8)
        mask[150:, 250:] = 0
        dst.write_mask(mask)
    plan = open_scene(path, SceneInputSpec(), 1).plan
    _, valid = read_tiles(plan, [(136, 236)], 64)
    assert not valid[0, 14:, 14:].any() and valid[0, :14].all()


def test_float_scene_with_nan_nodata(tmp_path, helpers):
    data = np.linspace(0, 1, 40 * 50, dtype=np.float32).reshape(1, 40, 50)
    data[0, :10, :10] = np.nan
    path = helpers.write_scene(tmp_path / "float.tif", data=data, nodata=float("nan"))
    plan = open_scene(path, SceneInputSpec(scale=[0, 1]), 1).plan
    x, valid = read_tiles(plan, [(0, 0)], 64)
    assert not valid[0, :10, :10].any() and valid[0, 10:40, :50].all() and not valid[0, 40:].any()
    assert np.isfinite(x).all() and (x[0, 0, :10, :10] == 0).all()
    np.testing.assert_allclose(x[0, 0, 10:40, :50], data[0, 10:40], atol=1e-6)
