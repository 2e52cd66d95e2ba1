"""Tests for damagemap.data.io: read_image / read_mask."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

from damagemap.data.io import read_image, read_mask
from damagemap.errors import InputError


def test_rgb_uint8_scaled(png, tmp_path, rng):
    arr = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    image = read_image(png(tmp_path / "a.png", arr))
    assert image.shape == (3, 8, 10) and image.dtype == np.float32
    np.testing.assert_allclose(image, np.moveaxis(arr, -1, 0) / 255.0, rtol=1e-6)


def test_grayscale_is_one_band(png, tmp_path, rng):
    arr = rng.integers(0, 256, (8, 10), dtype=np.uint8)
    image = read_image(png(tmp_path / "g.png", arr))
    assert image.shape == (1, 8, 10)


def test_rgba_drops_alpha(png, tmp_path, rng):
    arr = rng.integers(0, 256, (8, 10, 4), dtype=np.uint8)
    image = read_image(png(tmp_path / "a.png", arr))
    np.testing.assert_allclose(image, np.moveaxis(arr[..., :3], -1, 0) / 255.0, rtol=1e-6)


def test_palette_expands_to_rgb(png, tmp_path, rng):
    arr = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    path = tmp_path / "p.png"
    Image.fromarray(arr).convert("P").save(path)
    assert read_image(path).shape == (3, 8, 10)


def test_uint16_png_scaled(png, tmp_path):
    arr = np.array([[0, 1000], [30000, 65535]], dtype=np.uint16)
    image = read_image(png(tmp_path / "u16.png", arr))
    np.testing.assert_allclose(image[0], arr / 65535.0, rtol=1e-6)


def test_jpeg(png, tmp_path, rng):
    path = tmp_path / "a.jpg"
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path, quality=90)
    image = read_image(path)
    assert image.shape == (3, 16, 16) and image.min() >= 0.0 and image.max() <= 1.0


def test_multiband_uint16_tiff_read_with_rasterio(png, tmp_path, rng):
    rasterio = pytest.importorskip("rasterio")
    arr = rng.integers(0, 65536, (4, 6, 5), dtype=np.uint16)
    path = tmp_path / "ms.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        profile = {"driver": "GTiff", "width": 5, "height": 6, "count": 4, "dtype": "uint16"}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(arr)
    image = read_image(path, bands=[2, 1, 0])
    np.testing.assert_allclose(image, arr[[2, 1, 0]] / 65535.0, rtol=1e-6)


def test_float_tiff_with_nan_rejected(png, tmp_path):
    arr = np.full((4, 4), 0.5, dtype=np.float32)
    arr[1, 2] = np.nan
    path = tmp_path / "nan.tif"
    Image.fromarray(arr, mode="F").save(path)
    with pytest.raises(InputError, match="nan.tif.*NaN"):
        read_image(path)


def test_bands_select_and_reorder(png, tmp_path, rng):
    arr = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    path = png(tmp_path / "a.png", arr)
    np.testing.assert_array_equal(read_image(path, bands=[2, 0]), read_image(path)[[2, 0]])
    with pytest.raises(InputError, match="a.png.*3 band"):
        read_image(path, bands=[3])


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@pytest.mark.parametrize("lenient", [False, True])
def test_truncated_file_rejected(png, tmp_path, rng, truncate, monkeypatch, suffix, lenient):
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    truncate(path)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", lenient)
    with pytest.raises(InputError, match=f"cut{suffix}: cannot decode image"):
        read_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is lenient  # global flag restored


def test_not_an_image(png, tmp_path):
    path = tmp_path / "text.png"
    path.write_text("hello")
    with pytest.raises(InputError, match="text.png: cannot decode image"):
        read_image(path)


def test_missing_file(png, tmp_path):
    with pytest.raises(InputError, match="nothere.png: file not found"):
        read_image(tmp_path / "nothere.png")


def test_mask_values_and_dtype(png, tmp_path):
    arr = np.array([[0, 1], [4, 255]], dtype=np.uint8)
    mask = read_mask(png(tmp_path / "m.png", arr))
    assert mask.dtype == np.int64
    np.testing.assert_array_equal(mask, arr)


def test_mask_uint16_kept(png, tmp_path):
    arr = np.array([[0, 300], [1000, 2]], dtype=np.uint16)
    np.testing.assert_array_equal(read_mask(png(tmp_path / "m.png", arr)), arr)


def test_mask_must_be_single_band(png, tmp_path, rng):
    path = png(tmp_path / "rgbmask.png", rng.integers(0, 2, (4, 4, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="rgbmask.png.*single-band"):
        read_mask(path)


def test_truncated_mask_rejected(png, tmp_path, rng, truncate):
    path = png(tmp_path / "m.png", rng.integers(0, 5, (64, 64), dtype=np.uint8))
    with pytest.raises(InputError, match="m.png: cannot decode image"):
        read_mask(truncate(path))
