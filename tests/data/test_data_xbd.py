"""Tests for damagemap.data.xbd on the real xBD fixture and on synthetic tiles."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from damagemap.data import DAMAGE_GRADES, damaged_fractions, rasterize_instances, read_xbd
from damagemap.data.xbd import damage_lut
from damagemap.errors import InputError

N_BUILDINGS = {
    "joplin-tornado_00000000": 185,
    "joplin-tornado_00000001": 198,
    "joplin-tornado_00000002": 103,
    "socal-fire_00000000": 0,
}


# --- real data ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xbd_root(shared_data):
    root = shared_data / "xbd"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    return root


@pytest.fixture(scope="module")
def xbd(xbd_root):
    return read_xbd(xbd_root)


def test_real_tiles(xbd):
    assert [s.id for s in xbd] == list(N_BUILDINGS)
    assert [s.domain for s in xbd] == ["joplin-tornado"] * 3 + ["socal-fire"]
    for s in xbd:
        assert s.image.shape == (3, 1024, 1024) and s.image.dtype == np.float32
        assert s.mask.shape == (1024, 1024) and s.mask.dtype == np.int64
        assert s.buildings.dtype == np.uint8
        assert s.meta["n_buildings"] == N_BUILDINGS[s.id] == len(s.meta["buildings_info"])


def test_real_every_polygon_drawn_with_its_class(xbd, xbd_root):
    for s in xbd:
        info = s.meta["buildings_info"]
        features = json.loads((xbd_root / "labels" / f"{s.id}_post_disaster.json").read_text())
        subtypes = [f["properties"]["subtype"] for f in features["features"]["xy"]]
        assert [b["subtype"] for b in info] == subtypes
        assert len({b["uid"] for b in info}) == len(info)

        instances = rasterize_instances(info, s.mask.shape)
        drawn = set(np.unique(instances).tolist()) - {0}
        assert drawn == set(range(1, len(info) + 1)), "every polygon must cover pixels"

        grade_of = np.array([0] + [b["grade"] for b in info])
        np.testing.assert_array_equal(s.mask, grade_of[instances])
        np.testing.assert_array_equal(s.buildings, (instances > 0).astype(np.uint8))
        present = {int(v) for v in np.unique(s.mask)} - {0}
        assert present == {DAMAGE_GRADES[t] for t in subtypes}


def test_real_class_pixel_counts(xbd):
    s = xbd[0]
    counts = Counter(b["subtype"] for b in s.meta["buildings_info"])
    assert counts == {"destroyed": 102, "minor-damage": 43, "major-damage": 27, "un-classified": 7, "no-damage": 6}
    pixels = {int(v): int(c) for v, c in zip(*np.unique(s.mask, return_counts=True))}
    # per-class area roughly follows the building counts (destroyed dominates, none are empty)
    assert pixels[4] > pixels[2] > pixels[1] > 0 and pixels[3] > 0 and pixels[255] > 0


def test_real_no_buildings_tile(xbd):
    s = xbd[-1]
    assert s.id == "socal-fire_00000000"
    assert not s.mask.any() and not s.buildings.any() and s.meta["buildings_info"] == []


def test_real_pre_post_and_binary(xbd, xbd_root):
    joplin = read_xbd(xbd_root, use_pre=True, damage="binary-major", domains=["joplin-tornado"])[0]
    grades = xbd[0].mask
    assert joplin.image.shape == joplin.pre.shape == (3, 1024, 1024)
    np.testing.assert_array_equal(joplin.image, xbd[0].image)
    assert xbd[0].pre is None and not np.array_equal(joplin.pre, joplin.image)
    assert joplin.meta["pre_image_path"].endswith("joplin-tornado_00000000_pre_disaster.png")
    major = np.where(grades == 255, 255, np.isin(grades, (3, 4)))
    np.testing.assert_array_equal(joplin.mask, major)
    minor = read_xbd(xbd_root, damage="binary-minor", domains=["joplin-tornado"])[0]
    expected = np.where(grades == 255, 255, np.isin(grades, (2, 3, 4)))
    np.testing.assert_array_equal(minor.mask, expected)
    fractions = damaged_fractions(xbd, (2, 3, 4))
    assert (fractions[:3] > 0.04).all() and fractions[3] == 0.0


# --- synthetic tiles ---------------------------------------------------------------------


def _feature(wkt: str, subtype: str = "destroyed", uid: str = "u1") -> dict:
    return {"properties": {"feature_type": "building", "subtype": subtype, "uid": uid}, "wkt": wkt}


@pytest.fixture
def make_tile(tmp_path, png, rng):
    """Write a 32x48 xBD tile (pre + post image, post label) under tmp_path; returns root."""

    def make(features: list[dict], tile: str = "flood-x_00000001", size=(32, 48)) -> object:
        for when in ("pre", "post"):
            png(tmp_path / "images" / f"{tile}_{when}_disaster.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        doc = {"features": {"lng_lat": [], "xy": features}, "metadata": {"width": size[1], "height": size[0]}}
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / f"{tile}_post_disaster.json").write_text(json.dumps(doc))
        return tmp_path

    return make


def test_pixel_coordinates_are_x_col_y_row(make_tile):
    root = make_tile(
        [
            _feature("POLYGON ((10 5, 30 5, 30 15, 10 15, 10 5))", "major-damage", "a"),
            _feature("POLYGON ((0 20, 4 20, 4 30, 0 30, 0 20))", "un-classified", "b"),
        ]
    )
    (s,) = read_xbd(root)
    expected = np.zeros((32, 48), np.int64)
    expected[5:15, 10:30] = 3
    expected[20:30, 0:4] = 255
    np.testing.assert_array_equal(s.mask, expected)
    np.testing.assert_array_equal(s.buildings, expected > 0)
    assert s.domain == "flood-x" and s.id == "flood-x_00000001"
    assert [b["uid"] for b in s.meta["buildings_info"]] == ["a", "b"]


def test_invalid_wkt_names_file_and_uid(make_tile):
    root = make_tile([_feature("POLYGON ((1 1, 2 2", uid="bad-uid-42")])
    match = r"flood-x_00000001_post_disaster.json: feature bad-uid-42: invalid WKT"
    with pytest.raises(InputError, match=match):
        read_xbd(root)


def test_unknown_subtype(make_tile):
    root = make_tile([_feature("POLYGON ((1 1, 5 1, 5 5, 1 1))", subtype="sort-of-damaged")])
    match = "post_disaster.json: feature u1: subtype 'sort-of-damaged'"
    with pytest.raises(InputError, match=match):
        read_xbd(root)


def test_missing_post_image(make_tile):
    root = make_tile([])
    (root / "images" / "flood-x_00000001_post_disaster.png").unlink()
    match = r"post_disaster.json: image for this label file not found: .*post_disaster.png"
    with pytest.raises(InputError, match=match):
        read_xbd(root)


def test_metadata_size_mismatch(make_tile, png):
    root = make_tile([])
    png(root / "images" / "flood-x_00000001_post_disaster.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(InputError, match="metadata says 32x48"):
        read_xbd(root)


def test_missing_labels_folder(tmp_path):
    with pytest.raises(InputError, match="labels: xBD labels folder not found"):
        read_xbd(tmp_path)


def test_damage_lut():
    grades = np.array([0, 1, 2, 3, 4, 255])
    assert damage_lut("grades")[grades].tolist() == [0, 1, 2, 3, 4, 255]
    assert damage_lut("binary-major")[grades].tolist() == [0, 0, 0, 1, 1, 255]
    assert damage_lut("binary-minor")[grades].tolist() == [0, 0, 1, 1, 1, 255]
    with pytest.raises(ValueError, match="damage must be"):
        read_xbd(".", damage="bogus")
