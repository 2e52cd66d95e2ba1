"""read_geotiff_labels: label polygons (any CRS) on a GeoTIFF → training tiles."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize
from rasterio.transform import Affine
from shapely.geometry import box

from damagemap.data.geo_labels import read_geotiff_labels
from damagemap.errors import InputError
from damagemap.types import IGNORE_INDEX

ORIGIN = (500000.0, 4000000.0)  # EPSG:32616
PIXEL = 0.5
TRANSFORM = Affine(PIXEL, 0.0, ORIGIN[0], 0.0, -PIXEL, ORIGIN[1])
H, W = 64, 96


def pixel_box(r0: int, c0: int, r1: int, c1: int):
    """Polygon covering pixels rows r0..r1-1, cols c0..c1-1 (scene CRS)."""
    x0, y0 = TRANSFORM @ (c0, r0)
    x1, y1 = TRANSFORM @ (c1, r1)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def write_scene(path: Path, data: np.ndarray | None = None, crs: str | None = "EPSG:32616", nodata=0) -> Path:
    if data is None:
        rng = np.random.default_rng(0)
        data = rng.integers(1, 256, (3, H, W), dtype=np.uint8)
    profile = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        transform=TRANSFORM,
        nodata=nodata,
    )
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def write_labels(
    path: Path,
    geoms: list,
    values: list,
    crs: str | None = "EPSG:4326",
    column: str = "damage",
    driver: str = "GeoJSON",
) -> Path:
    """Polygons given in the scene CRS, written in ``crs`` (reprojected)."""
    gdf = gpd.GeoDataFrame({column: values}, geometry=geoms, crs="EPSG:32616")
    if crs is None:
        gdf = gdf.set_crs(None, allow_override=True)
    elif crs != "EPSG:32616":
        gdf = gdf.to_crs(crs)
    gdf.to_file(path, driver=driver, engine="pyogrio")
    return path


def paste(samples, fill=IGNORE_INDEX, what="mask", shape=(H, W)) -> np.ndarray:
    """Reassemble the tiles' masks into a scene-sized array (tiles may overlap)."""
    out = np.full(shape, fill, dtype=np.int64)
    for s in samples:
        r, c, h, w = s.meta["window"]
        out[r : r + h, c : c + w] = getattr(s, what)
    return out


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    return write_scene(tmp_path / "scene.tif")


def test_square_lands_on_the_exact_pixels(tmp_path, scene):
    labels = write_labels(tmp_path / "l.geojson", [pixel_box(10, 20, 20, 30)], [1])
    samples = read_geotiff_labels(scene, labels, tile=32)
    full = paste(samples)
    expected = np.full((H, W), IGNORE_INDEX)
    expected[10:20, 20:30] = 1
    assert (full == 1).sum() == 100
    np.testing.assert_array_equal(full, expected)
    for s in samples:  # outside the polygon: ignore; inside each tile: only the polygon's pixels
        assert set(np.unique(s.mask)) <= {1, IGNORE_INDEX}


def test_tiles_image_geo_and_scaling(tmp_path, scene):
    labels = write_labels(tmp_path / "l.geojson", [pixel_box(40, 70, 50, 90)], [1])
    (s,) = read_geotiff_labels(scene, labels, tile=32, domain="ev")
    r, c, h, w = s.meta["window"]
    assert (h, w) == (32, 32) and 0 <= r <= 40 and r + h >= 50 and c + w >= 90 and c + w <= W
    with rasterio.open(scene) as src:
        raw = src.read(window=((r, r + h), (c, c + w)))
        assert s.geo.crs == src.crs.to_wkt()
        assert s.geo.transform == tuple(src.transform @ Affine.translation(c, r))[:6]
    np.testing.assert_allclose(s.image, raw / 255.0, rtol=1e-6)
    assert s.image.dtype == np.float32 and s.mask.dtype == np.int64
    assert s.domain == "ev" and s.key.startswith("ev/scene_r")


def test_uint16_scaling_and_band_selection(tmp_path):
    data = np.full((2, H, W), 65535, dtype=np.uint16)
    data[1] = 13107  # 0.2
    scene = write_scene(tmp_path / "s16.tif", data)
    labels = write_labels(tmp_path / "l.geojson", [pixel_box(0, 0, 8, 8)], [0])
    (s,) = read_geotiff_labels(scene, labels, tile=16, bands=[2, 1])
    assert s.image.shape == (2, 16, 16)
    np.testing.assert_allclose(s.image[0], 0.2, rtol=1e-6)
    np.testing.assert_allclose(s.image[1], 1.0)
    with pytest.raises(InputError, match="band"):
        read_geotiff_labels(scene, labels, tile=16, bands=[3])


def test_classes_overlap_background_and_names(tmp_path, scene):
    area, rubble = pixel_box(0, 0, 32, 32), pixel_box(8, 8, 16, 16)
    labels = write_labels(tmp_path / "l.geojson", [rubble, area], ["damaged", "no-damage"], column="kind")
    cmap = {"no-damage": 0, "damaged": 1}
    full = paste(read_geotiff_labels(scene, labels, tile=32, class_column="kind", class_map=cmap))
    assert (full == 1).sum() == 64 and (full[8:16, 8:16] == 1).all()  # the higher class wins
    assert (full == 0).sum() == 32 * 32 - 64
    with pytest.raises(InputError, match=r"unknown value.*'no-damage'.*expected one of: damaged \(1\)"):
        read_geotiff_labels(scene, labels, class_column="kind", class_map={"damaged": 1})
    with pytest.raises(InputError, match="class_map"):
        read_geotiff_labels(scene, labels, class_column="kind")
    with pytest.raises(InputError, match="class column 'damage' not found"):
        read_geotiff_labels(scene, labels)
    small = write_labels(tmp_path / "s.geojson", [pixel_box(40, 40, 44, 44)], [1])
    (s,) = read_geotiff_labels(scene, small, tile=16, unlabelled="background")
    assert (s.mask == 1).sum() == 16 and (s.mask == 0).sum() == 16 * 16 - 16


def test_nodata_is_ignored(tmp_path):
    data = np.full((3, H, W), 100, dtype=np.uint8)
    data[:, :5, :] = 0
    scene = write_scene(tmp_path / "nd.tif", data)
    labels = write_labels(tmp_path / "l.geojson", [pixel_box(0, 0, 10, 10)], [1])
    full = paste(read_geotiff_labels(scene, labels, tile=16))
    assert (full == 1).sum() == 50 and (full[:5] == IGNORE_INDEX).all()


def test_building_footprints_any_crs(tmp_path, scene):
    labels = write_labels(tmp_path / "l.geojson", [pixel_box(0, 0, 32, 32)], [0])
    fp = write_labels(
        tmp_path / "fp.gpkg",
        [pixel_box(2, 3, 6, 9), pixel_box(20, 20, 22, 30)],
        [1, 2],
        crs="EPSG:3857",
        column="building_id",
        driver="GPKG",
    )
    (s,) = read_geotiff_labels(scene, labels, tile=32, buildings_path=fp)
    expected = np.zeros((32, 32), np.uint8)
    expected[2:6, 3:9] = 1
    expected[20:22, 20:30] = 1
    np.testing.assert_array_equal(s.buildings, expected)


def test_only_tiles_with_labels_are_returned(tmp_path):
    scene = write_scene(tmp_path / "big.tif", np.ones((3, 256, 256), np.uint8))
    labels = write_labels(tmp_path / "l.geojson", [pixel_box(0, 0, 10, 10), pixel_box(200, 200, 210, 210)], [1, 0])
    samples = read_geotiff_labels(scene, labels, tile=32)
    assert sorted(s.meta["window"][:2] for s in samples) == [(0, 0), (178, 178)]  # last tile ends at the labelled box


@pytest.mark.parametrize(
    "case, match",
    [
        ("scene missing", "not found"),
        ("labels missing", "labels file not found"),
        ("buildings missing", "building footprints file not found"),
        ("scene without CRS", "no CRS"),
        ("labels without CRS", "have no CRS"),
        ("labels untransformable", "cannot transform"),
        ("labels elsewhere", "do not overlap the scene"),
        ("no labelled pixel", "no labelled pixels"),
    ],
)
def test_errors_name_the_file(tmp_path, scene, case, match):
    good = write_labels(tmp_path / "good.geojson", [pixel_box(0, 0, 8, 8)], [1])
    args, kwargs = (scene, good), {}
    if case == "scene missing":
        args = (tmp_path / "nope.tif", good)
    elif case == "labels missing":
        args = (scene, tmp_path / "nope.geojson")
    elif case == "buildings missing":
        kwargs = {"buildings_path": tmp_path / "nope.gpkg"}
    elif case == "scene without CRS":
        args = (write_scene(tmp_path / "nocrs.tif", crs=None), good)
    elif case == "labels without CRS":
        args = (scene, write_labels(tmp_path / "nocrs.gpkg", [pixel_box(0, 0, 8, 8)], [1], crs=None, driver="GPKG"))
    elif case == "labels untransformable":
        gdf = gpd.GeoDataFrame({"damage": [1]}, geometry=[box(0, 0, 5, 5)], crs='LOCAL_CS["site",UNIT["metre",1]]')
        gdf.to_file(tmp_path / "local.gpkg", driver="GPKG", engine="pyogrio")
        args = (scene, tmp_path / "local.gpkg")
    elif case == "labels elsewhere":
        args = (scene, write_labels(tmp_path / "far.geojson", [box(600000, 4100000, 600010, 4100010)], [1]))
    elif case == "no labelled pixel":  # between pixel centres
        x, y = TRANSFORM @ (10, 10)
        args = (scene, write_labels(tmp_path / "tiny.geojson", [box(x - 0.1, y - 0.1, x + 0.1, y + 0.1)], [1]))
    with pytest.raises(InputError, match=match) as info:
        read_geotiff_labels(*args, **kwargs)
    assert info.value.path is not None


def test_shared_footprints_as_labels(tmp_path, shared_data):
    geo = shared_data / "geo"
    if not (geo / "sample_geotiff.tif").is_file():
        pytest.skip("no geo sample data")
    fp = gpd.read_file(geo / "geotiff_labels.geojson")[["geometry"]]
    fp["damage"] = 1
    fp.to_file(tmp_path / "labels.gpkg", driver="GPKG", engine="pyogrio")
    samples = read_geotiff_labels(geo / "sample_geotiff.tif", tmp_path / "labels.gpkg", tile=128)
    with rasterio.open(geo / "sample_geotiff.tif") as src:
        shape, transform, valid = (src.height, src.width), src.transform, src.read_masks(1) > 0
        full_truth = rasterize(
            [(g, 1) for g in fp.geometry], out_shape=shape, transform=transform, fill=0, dtype="uint8"
        )
    full_truth[~valid] = 0
    full = paste(samples, shape=shape)
    assert samples[0].image.shape[0] == 1
    assert int((full == 1).sum()) == int(full_truth.sum()) > 0
    np.testing.assert_array_equal(full == 1, full_truth == 1)
