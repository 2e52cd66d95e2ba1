from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage

from damagemap.mapping.vectorize import damaged_regions
from tests.mapping.rasters import write_uint8

T = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4000000.0)


def write(path, arr):
    return write_uint8(path, arr, T)


def regions(tmp_path, cls, prob, damaged, chunk):
    c, p = write(tmp_path / "cls.tif", cls), write(tmp_path / "prob.tif", prob)
    frames = list(damaged_regions(c, p, damaged, chunk=chunk, batch=7))
    import pandas as pd

    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["damage_class", "n_pixels", "mean_probability"]).reset_index(drop=True)


def constructed():
    cls = np.zeros((100, 120), np.uint8)
    prob = np.full((100, 120), 20, np.uint8)
    cls[10:50, 20:90] = 1  # crosses several 32 px windows, with a hole
    prob[10:50, 20:90] = 200
    cls[20:30, 40:50] = 0
    prob[20:30, 40:50] = 20
    cls[60:64, 60:100] = 1  # an L crossing window edges
    cls[60:95, 96:100] = 1
    prob[60:64, 60:100] = 100
    prob[60:95, 96:100] = 100
    cls[90, 5] = 1  # single pixel
    prob[90, 5] = 254
    cls[70, 10] = cls[71, 11] = 1  # diagonal neighbours: two regions (4-connectivity)
    cls[52:58, 20:30] = 2  # another damaged class
    cls[0:5, 0:5] = 255  # nodata
    prob[0:5, 0:5] = 255
    return cls, prob


def test_regions_merge_across_windows(tmp_path):
    cls, prob = constructed()
    small = regions(tmp_path, cls, prob, [1, 2], chunk=32)
    whole = regions(tmp_path, cls, prob, [1, 2], chunk=4096)
    assert len(small) == len(whole) == 6
    for col in ("damage_class", "n_pixels", "area_m2", "mean_probability"):
        np.testing.assert_allclose(small[col].to_numpy(float), whole[col].to_numpy(float))
    for a, b in zip(small.geometry, whole.geometry):
        assert a.symmetric_difference(b).area < 1e-6
    big = small.iloc[-2]  # the holed rectangle: largest class-1 region
    assert big["n_pixels"] == 40 * 70 - 100
    assert big["area_m2"] == pytest.approx((40 * 70 - 100) * 0.25)
    assert big.geometry.area == pytest.approx(big["area_m2"])
    assert big.geometry.geom_type == "Polygon" and len(big.geometry.interiors) == 1
    assert big["mean_probability"] == pytest.approx(200 / 254)
    single = small[small["n_pixels"] == 1]
    assert sorted(single["mean_probability"].round(4)) == sorted(
        [round(254 / 254, 4), round(20 / 254, 4), round(20 / 254, 4)]
    )
    assert (small["damage_class"] == 2).sum() == 1
    assert small["region_id"].tolist() != [] and small["region_id"].is_unique


def test_random_blobs_match_whole_image_labelling(tmp_path):
    rng = np.random.default_rng(0)
    noise = ndimage.gaussian_filter(rng.random((150, 170)), 3)
    cls = (noise > np.quantile(noise, 0.6)).astype(np.uint8)
    prob = rng.integers(0, 255, cls.shape).astype(np.uint8)
    small = regions(tmp_path, cls, prob, [1], chunk=40)
    labels, n = ndimage.label(cls == 1)
    assert len(small) == n
    sizes = np.bincount(labels.ravel())[1:]
    np.testing.assert_array_equal(np.sort(small["n_pixels"].to_numpy()), np.sort(sizes))
    assert small.geometry.area.sum() == pytest.approx(sizes.sum() * 0.25)
    sums = ndimage.sum(prob.astype(float), labels, index=range(1, n + 1)) / sizes / 254
    np.testing.assert_allclose(np.sort(small["mean_probability"]), np.sort(sums))


def test_no_damage_gives_an_empty_layer(tmp_path):
    cls = np.zeros((50, 50), np.uint8)
    out = regions(tmp_path, cls, cls, [1], chunk=32)
    assert len(out) == 0 and list(out.columns)[:5] == [
        "region_id",
        "damage_class",
        "n_pixels",
        "area_m2",
        "mean_probability",
    ]
