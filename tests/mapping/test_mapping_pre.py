"""map_scene with a pre-event scene: warped onto the post grid on the fly, nodata from either image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject

from damagemap.errors import ConfigError, InputError
from damagemap.mapping import BrightnessPredictor, MapOptions, map_scene
from tests.mapping.conftest import pattern, write_scene

FAST = dict(tile=64, overlap=16, block=64, batch=2, grid_m=None)


@dataclass
class ChangePredictor:
    """P(damage) = mean |post − pre| over the bands (a pair predictor: tiles hold post then pre bands)."""

    in_bands: int = 1
    num_outputs: int = 1
    pair: bool = True

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        post, pre = tiles[:, : self.in_bands], tiles[:, self.in_bands :]
        assert pre.shape == post.shape
        return np.clip(np.abs(post - pre).mean(axis=1, keepdims=True) * 4, 0, 1).astype(np.float32)


def warped_copy(src_path: Path, dst_path: Path, crs: str, resolution: float) -> Path:
    """The scene reprojected to another CRS and pixel size (what a pre-event image from another provider looks like)."""
    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds, resolution=resolution
        )
        data = np.zeros((src.count, height, width), np.uint8)
        reproject(
            src.read(),
            data,
            src_transform=src.transform,
            src_crs=src.crs,
            src_nodata=0,
            dst_transform=transform,
            dst_crs=crs,
            dst_nodata=0,
            resampling=Resampling.bilinear,
        )
        profile = dict(
            driver="GTiff",
            width=width,
            height=height,
            count=src.count,
            dtype="uint8",
            crs=crs,
            transform=transform,
            nodata=0,
        )
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data)
    return dst_path


def _probability(out: Path) -> np.ma.MaskedArray:
    with rasterio.open(out / "damage_probability.tif") as src:
        return src.read(1, masked=True).astype(float) / 254


def test_an_unchanged_scene_in_another_crs_and_resolution_shows_no_change(tmp_path) -> None:
    post = write_scene(tmp_path / "post.tif", nodata_box=None)
    pre = warped_copy(post, tmp_path / "pre.tif", "EPSG:3857", 0.7)
    changed = write_scene(tmp_path / "changed.tif", data=pattern(200, 300)[None, ::-1].copy(), nodata_box=None)
    map_scene(ChangePredictor(), post, tmp_path / "same", MapOptions(**FAST, pre=pre))
    map_scene(ChangePredictor(), post, tmp_path / "diff", MapOptions(**FAST, pre=changed))
    same, diff = _probability(tmp_path / "same"), _probability(tmp_path / "diff")
    inner = (slice(4, -4), slice(4, -4))  # resampling at the warped image's edge
    assert float(same[inner].mean()) < 0.05 < 0.3 < float(diff[inner].mean())


def test_pixels_the_pre_scene_does_not_cover_are_nodata(tmp_path) -> None:
    post = write_scene(tmp_path / "post.tif", nodata_box=None)
    with rasterio.open(post) as src:
        left = src.read(window=rasterio.windows.Window(0, 0, 150, 200))
        profile = src.profile | {"width": 150}
    with rasterio.open(tmp_path / "left.tif", "w", **profile) as dst:
        dst.write(left)
    map_scene(ChangePredictor(), post, tmp_path / "out", MapOptions(**FAST, pre=tmp_path / "left.tif"))
    prob = _probability(tmp_path / "out")
    assert not prob.mask[:, :149].any() and prob.mask[:, 151:].all()


def test_pre_and_model_must_agree(tmp_path) -> None:
    post = write_scene(tmp_path / "post.tif")
    with pytest.raises(ConfigError, match="pair model; give the pre-event scene"):
        map_scene(ChangePredictor(), post, tmp_path / "a", MapOptions(**FAST))
    with pytest.raises(ConfigError, match="takes the post-event scene only"):
        map_scene(BrightnessPredictor(), post, tmp_path / "b", MapOptions(**FAST, pre=post))
    far = write_scene(tmp_path / "far.tif", transform=Affine(0.5, 0, 900000.0, 0, -0.5, 4000000.0))
    with pytest.raises(InputError, match="far.tif: pre-event scene does not overlap the post-event scene"):
        map_scene(ChangePredictor(), post, tmp_path / "c", MapOptions(**FAST, pre=far))
    with pytest.raises(InputError, match="missing.tif: scene file not found"):
        map_scene(ChangePredictor(), post, tmp_path / "d", MapOptions(**FAST, pre=tmp_path / "missing.tif"))
    assert not any((tmp_path / n).exists() for n in "abcd")
