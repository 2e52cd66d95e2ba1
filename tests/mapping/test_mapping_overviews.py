"""Overviews built block by block: the pixels, sizes and levels GDAL would build, copied into the COGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine

from damagemap.mapping import BrightnessPredictor, MapOptions, map_scene, writer
from damagemap.mapping.encoding import CLASS, NODATA, PROBABILITY
from damagemap.mapping.overviews import Pyramid, pyramid_levels, reduce_mean, reduce_nearest
from damagemap.mapping.windows import Block

TRANSFORM = Affine(0.5, 0, 500000, 0, -0.5, 4000000)


def _levels(path: Path) -> list[np.ndarray]:
    with rasterio.open(path) as ds:
        n = len(ds.overviews(1))
    out = []
    for i in range(n):
        with rasterio.open(path, overview_level=i) as ov:
            out.append(ov.read(1))
    return out


def _gdal_cog(pixels: np.ndarray, tmp: Path, layer: str, name: str) -> Path:
    """The COG GDAL makes of ``pixels`` computing the overviews itself (the path without prebuilt ones)."""
    src = tmp / f"{name}.src.tif"
    profile = dict(driver="GTiff", width=pixels.shape[1], height=pixels.shape[0], count=1, dtype="uint8")
    with rasterio.open(src, "w", **profile, nodata=NODATA, crs="EPSG:32616", transform=TRANSFORM) as ds:
        ds.write(pixels, 1)
    writer.to_cog(src, tmp / f"{name}.cog.tif", layer, pixels.shape[1], pixels.shape[0])
    return tmp / f"{name}.cog.tif"


def _pyramid_cog(pixels: np.ndarray, tmp: Path, layer: str, block: int) -> Path:
    """The COG of ``pixels`` written block by block with a :class:`Pyramid`, as a map writes it."""
    h, w = pixels.shape
    base = tmp / f"{layer}.assembly.tif"
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": 1,
        "dtype": "uint8",
        "nodata": NODATA,
        "crs": "EPSG:32616",
        "transform": TRANSFORM,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
    }
    codec = {"compress": "zstd"}
    levels = pyramid_levels(w, h, writer.cog_blocksize(w, h), block)
    assert levels > 0
    pyramid = Pyramid(base, profile, codec, levels, nearest=layer == CLASS)
    with rasterio.open(base, "w", **profile, **codec) as ds:
        blocks = [(r, c) for r in range(0, h, block) for c in range(0, w, block)]
        for r, c in reversed(blocks):  # any order: each block reduces on its own
            piece = pixels[r : r + block, c : c + block]
            b = Block(r // block, c // block, r, c, piece.shape[0], piece.shape[1])
            ds.write(piece, 1, window=b.window)
            pyramid.write(b, piece)
    pyramid.close()
    vrt = pyramid.vrt(base)
    writer.to_cog(vrt, tmp / f"{layer}.cog.tif", layer, w, h, prebuilt_overviews=True)
    return tmp / f"{layer}.cog.tif"


def _pixels(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 255, (h, w)).astype(np.uint8)  # 0..254: valid
    a[rng.random((h, w)) < 0.3] = NODATA
    a[: h // 4, : w // 4] = NODATA  # whole nodata cells at every level
    return a


@pytest.mark.parametrize("layer", [PROBABILITY, CLASS])
def test_prebuilt_overviews_equal_gdals_where_sizes_divide(tmp_path, layer):
    pixels = _pixels(1024, 1536)  # 2 levels under 512 px COG blocks (768, 384 wide); 4 divides both sides
    ours = _levels(_pyramid_cog(pixels, tmp_path, layer, block=256))
    gdal = _levels(_gdal_cog(pixels, tmp_path, layer, "ref"))
    assert len(ours) == len(gdal) == 2
    for a, b in zip(ours, gdal):
        assert a.shape == b.shape and np.array_equal(a, b)


def test_odd_sizes_give_gdaladdo_sizes_and_a_valid_pixel_mean_at_the_edge(tmp_path):
    pixels = _pixels(1030, 517, seed=1)
    ours = _levels(_pyramid_cog(pixels, tmp_path, PROBABILITY, block=512))
    assert [a.shape for a in ours] == [(515, 259), (258, 130)]  # ⌈size / 2^k⌉, as gdaladdo
    edge = pixels[:, 516:517]  # the last column forms one-pixel-wide cells of its own
    for i in (0, 200, 514):
        cell = edge[2 * i : 2 * i + 2, 0]
        valid = cell[cell != NODATA].astype(int)
        expected = NODATA if valid.size == 0 else int(np.floor(valid.mean() + 0.5))
        assert ours[0][i, 258] == expected


def test_mean_skips_nodata_and_rounds_half_up():
    a = np.array([[10, 11, NODATA, NODATA], [NODATA, 12, NODATA, NODATA]], np.uint8)
    assert reduce_mean(a).tolist() == [[11, NODATA]]  # (10 + 11 + 12) / 3 = 11; an empty cell stays nodata
    assert reduce_mean(np.array([[1, 2], [2, 2]], np.uint8)).tolist() == [[2]]  # 1.75
    assert reduce_mean(np.array([[1, 2], [1, 2]], np.uint8)).tolist() == [[2]]  # 1.5 rounds up
    assert reduce_mean(np.array([[254, 254, 7]], np.uint8)).tolist() == [[254, 7]]  # odd width: a cell of its own
    assert reduce_nearest(np.arange(9, dtype=np.uint8).reshape(3, 3)).tolist() == [[0, 2], [6, 8]]


def test_levels_follow_the_cog_driver_and_need_a_dividing_block():
    assert pyramid_levels(4864, 4864, 512, 512) == 4  # 2432, 1216, 608, 304
    assert pyramid_levels(512, 300, 512, 512) == 0  # fits one COG block: none
    assert pyramid_levels(1025, 10, 512, 512) == 2  # 513 is still larger than a block
    assert pyramid_levels(10000, 10000, 512, 512) == 5  # factor 32
    assert pyramid_levels(10000, 10000, 512, 48) == 0  # 48 px blocks do not split into 32nds: GDAL builds them


def test_map_outputs_carry_the_overviews_gdal_would_compute(scene, tmp_path):
    options = MapOptions(tile=64, overlap=16, block=64, grid_m=None)
    res = map_scene(BrightnessPredictor(), scene, tmp_path / "out", options)
    for path, layer in [(res.probability, PROBABILITY), (res.damage_class, CLASS)]:
        with rasterio.open(path) as ds:
            full = ds.read(1)
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        gdal = _levels(_gdal_cog(full, tmp_path, layer, layer))
        ours = _levels(path)
        assert len(ours) == len(gdal) == 2  # 300×200: 150×100, 75×50 under 128 px COG blocks
        for a, b in zip(ours, gdal):
            assert np.array_equal(a, b)
    assert not list((tmp_path / "out").glob("*.ovr*")) and not list((tmp_path / "out").glob("*.vrt"))
