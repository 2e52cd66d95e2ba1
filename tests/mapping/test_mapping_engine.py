"""End-to-end: map_scene on small synthetic scenes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from shapely.geometry import box

from damagemap.errors import InputError
from damagemap.mapping import BrightnessPredictor, MapOptions, SceneInputSpec, map_scene
from damagemap.mapping.checkpoint import FINISHED_BLOCKS, WORK_DIRNAME

FAST = dict(tile=64, overlap=16, block=64, batch=2, grid_m=25.0)
RASTERS = ("damage_probability.tif", "damage_class.tif", "uncertainty.tif")


@dataclass
class Recording(BrightnessPredictor):
    """Brightness predictor that records what it was given."""

    tiles_seen: int = 0
    all_zero_tiles: int = 0

    def __call__(self, tiles):
        self.tiles_seen += len(tiles)
        self.all_zero_tiles += int((tiles.reshape(len(tiles), -1).max(axis=1) == 0).sum())
        return super().__call__(tiles)


@dataclass
class Crashing(BrightnessPredictor):
    """Raises after ``after`` calls — a crash in the middle of a run."""

    after: int = 0
    calls: int = 0

    def __call__(self, tiles):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("simulated crash")
        return super().__call__(tiles)


def assert_cog_like(path: Path, scene: Path) -> None:
    with rasterio.open(scene) as ref, rasterio.open(path) as out:
        assert out.crs == ref.crs and out.transform == ref.transform
        assert (out.width, out.height) == (ref.width, ref.height)
        assert out.dtypes[0] == "uint8" and out.nodata == 255
        assert out.profile["tiled"] and out.overviews(1)
        assert out.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    if shutil.which("gdalinfo"):
        info = subprocess.run(["gdalinfo", str(path)], capture_output=True, text=True, check=True).stdout
        assert "LAYOUT=COG" in info and "Overviews:" in info


def test_outputs_georeferenced_cogs_with_expected_values(scene, tmp_path):
    footprints = gpd.GeoDataFrame(
        {"building_id": ["a", "b"]},
        geometry=[box(500010, 3999990, 500020, 3999980), box(500100, 3999950, 500110, 3999940)],
        crs="EPSG:32616",
    )
    res = map_scene(BrightnessPredictor(), scene, tmp_path / "out", MapOptions(footprints=footprints, **FAST))
    out = tmp_path / "out"
    styles = ["damage_probability.qml", "damage_class.qml", "uncertainty.qml"]
    styles += ["damaged_regions.qml", "buildings.qml", "zones.qml", "damage_class.tif.aux.xml"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*RASTERS, "damage.gpkg", "buildings.csv", "zones.csv", "summary.json", *styles]
    )
    for name in RASTERS:
        assert_cog_like(out / name, scene)
    with rasterio.open(scene) as src:
        band, valid = src.read(1).astype(np.float64), src.dataset_mask() > 0
    p = band / 255.0
    with (
        rasterio.open(res.probability) as a,
        rasterio.open(res.damage_class) as b,
        rasterio.open(res.uncertainty) as c,
    ):
        prob, cls, unc = a.read(1), b.read(1), c.read(1)
        assert a.scales[0] == pytest.approx(1 / 254)
    for arr in (prob, cls, unc):  # input nodata stays nodata, everything else has a value
        assert (arr[~valid] == 255).all() and (arr[valid] != 255).all()
    assert np.abs(prob[valid].astype(int) - np.rint(p[valid] * 254)).max() <= 1
    np.testing.assert_array_equal(cls[valid], (p[valid] >= 0.5).astype(np.uint8))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log(p) + (1 - p) * np.nan_to_num(np.log(1 - p), neginf=0)) / np.log(2)
    assert np.abs(unc[valid].astype(int) - np.rint(np.nan_to_num(h[valid]) * 254)).max() <= 1
    assert res.stats["valid_pixels"] == int(valid.sum())
    assert res.stats["damaged_pixels"] == int((cls == 1).sum())
    assert res.stats["damaged_area_m2"] == pytest.approx(res.stats["damaged_pixels"] * 0.25)
    layers = dict(pyogrio.list_layers(out / "damage.gpkg"))
    assert set(layers) == {"damaged_regions", "buildings", "zones", "layer_styles"}
    regions = gpd.read_file(out / "damage.gpkg", layer="damaged_regions")
    assert regions.crs == "EPSG:32616" and regions["n_pixels"].sum() == res.stats["damaged_pixels"]
    if shutil.which("ogrinfo"):
        subprocess.run(["ogrinfo", "-so", "-al", str(out / "damage.gpkg")], capture_output=True, check=True)
    assert not (out / WORK_DIRNAME).exists()


def test_nodata_tiles_skip_the_predictor(tmp_path, helpers):
    path = helpers.write_scene(tmp_path / "holes.tif", nodata_box=(0, 120, 0, 150))
    pred = Recording()
    res = map_scene(pred, path, tmp_path / "out", MapOptions(vectorize=False, **{**FAST, "grid_m": None}))
    assert res.stats["tiles_nodata"] > 0
    assert res.stats["tiles_predicted"] + res.stats["tiles_nodata"] == res.stats["tiles"]
    assert pred.tiles_seen == res.stats["tiles_predicted"] and pred.all_zero_tiles == 0
    with rasterio.open(res.probability) as src:
        assert (src.read(1)[:120, :150] == 255).all()


def test_multiclass_predictor(scene, tmp_path):
    pred = BrightnessPredictor(num_outputs=4, hi=0.6)
    res = map_scene(pred, scene, tmp_path / "out", MapOptions(**FAST))
    with rasterio.open(scene) as src:
        image, valid = src.read(1).astype(np.float32) * np.float32(1 / 255), src.dataset_mask() > 0
    probs = pred(image[None, None])[0]  # the same per-pixel model on the whole image
    with rasterio.open(res.damage_class) as c, rasterio.open(res.probability) as q:
        cls, prob = c.read(1), q.read(1)
    assert (cls[valid] == probs.argmax(0)[valid]).mean() > 0.999
    assert set(np.unique(cls[valid])) == set(np.unique(probs.argmax(0)[valid])) == {0, 2, 3}
    assert np.abs(prob[valid].astype(int) - np.rint((1 - probs[0][valid]) * 254)).max() <= 1
    regions = gpd.read_file(res.vectors, layer="damaged_regions")
    assert set(regions["damage_class"]) == {2, 3}


def test_resume_after_crash_is_byte_identical(scene, tmp_path, helpers):
    fp = "brightness-test-model"
    ref = map_scene(BrightnessPredictor(fingerprint=fp), scene, tmp_path / "ref", MapOptions(**FAST))
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated crash"):
        map_scene(Crashing(fingerprint=fp, after=9), scene, out, MapOptions(**FAST))
    assert [p.name for p in out.iterdir()] == [WORK_DIRNAME]  # no partial outputs, only the checkpoint
    assert len(list((out / WORK_DIRNAME / "blocks").glob(FINISHED_BLOCKS))) > 0
    res = map_scene(Recording(fingerprint=fp), scene, out, MapOptions(**FAST))
    assert res.stats["blocks_resumed"] > 0
    assert res.stats["tiles_predicted"] < ref.stats["tiles_predicted"]
    assert helpers.digests(out) == helpers.digests(tmp_path / "ref")
    assert not (out / WORK_DIRNAME).exists()


def test_changed_parameters_restart_instead_of_mixing(scene, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        map_scene(Crashing(after=9), scene, out, MapOptions(**FAST))
    res = map_scene(BrightnessPredictor(), scene, out, MapOptions(**{**FAST, "threshold": 0.6}))
    assert res.stats["blocks_resumed"] == 0


KILL_SCRIPT = """
import sys, time
from dataclasses import dataclass
from damagemap.mapping import BrightnessPredictor, MapOptions, map_scene

@dataclass
class Slow(BrightnessPredictor):
    def __call__(self, tiles):
        time.sleep(0.15)
        return super().__call__(tiles)

map_scene(Slow(fingerprint="fp"), sys.argv[1], sys.argv[2],
          MapOptions(tile=64, overlap=16, block=64, batch=2, grid_m=25.0))
"""


def test_kill_9_then_rerun_is_byte_identical(scene, tmp_path, helpers):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(scene), str(out)])
    blocks = out / WORK_DIRNAME / "blocks"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if len(list(blocks.glob(FINISHED_BLOCKS))) >= 6:  # not a block being saved (hidden temporary)
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert [p.name for p in out.iterdir()] == [WORK_DIRNAME]
    res = map_scene(BrightnessPredictor(fingerprint="fp"), scene, out, MapOptions(**FAST))
    assert res.stats["blocks_resumed"] >= 6
    map_scene(BrightnessPredictor(fingerprint="fp"), scene, tmp_path / "ref", MapOptions(**FAST))
    assert helpers.digests(out) == helpers.digests(tmp_path / "ref")


def test_dask_two_workers_identical(tmp_path, helpers):
    scene = helpers.write_scene(tmp_path / "rgb.tif", count=3)
    pred = BrightnessPredictor(in_bands=3, band=1)
    kw = {**FAST, "batch": 3}
    map_scene(pred, scene, tmp_path / "single", MapOptions(**kw))
    res = map_scene(pred, scene, tmp_path / "dask", MapOptions(workers=2, **kw))
    assert res.stats["workers"] == 2
    assert helpers.digests(tmp_path / "dask") == helpers.digests(tmp_path / "single")


def test_existing_scheduler_is_used_and_left_running(scene, tmp_path, helpers):
    from distributed import Client, LocalCluster

    map_scene(BrightnessPredictor(), scene, tmp_path / "single", MapOptions(**FAST))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        res = map_scene(
            BrightnessPredictor(), scene, tmp_path / "remote", MapOptions(scheduler=cluster.scheduler_address, **FAST)
        )
        assert res.stats["workers"] == 1
        with Client(cluster.scheduler_address) as client:  # still up: map_scene only closed its client
            assert len(client.scheduler_info()["workers"]) == 1
    assert helpers.digests(tmp_path / "remote") == helpers.digests(tmp_path / "single")


def _shapefile_without_crs(tmp_path):
    gdf = gpd.GeoDataFrame({"id": [1]}, geometry=[box(500010, 3999950, 500020, 3999940)])
    path = tmp_path / "nocrs.shp"
    with pytest.warns(UserWarning):
        gdf.to_file(path)
    return path


def _gpkg_local_crs(tmp_path):
    gdf = gpd.GeoDataFrame({"id": [1]}, geometry=[box(0, 0, 10, 10)], crs='LOCAL_CS["site grid",UNIT["metre",1]]')
    path = tmp_path / "local.gpkg"
    gdf.to_file(path)
    return path


BAD_INPUTS = {
    "missing scene": lambda t, h: (t / "missing.tif", None, 1, "not found"),
    "truncated scene": lambda t, h: (_truncate(h.write_scene(t / "cut.tif")), None, 1, "truncated"),
    "no CRS": lambda t, h: (h.write_scene(t / "nocrs.tif", crs=None), None, 1, "no CRS"),
    "band mismatch": lambda t, h: (h.write_scene(t / "one.tif"), None, 3, "model expects 3"),
    "entirely nodata": lambda t, h: (
        h.write_scene(t / "empty.tif", nodata_box=(0, 200, 0, 300)),
        None,
        1,
        "entirely nodata",
    ),
    "footprints untransformable": lambda t, h: (
        h.write_scene(t / "s.tif"),
        _gpkg_local_crs(t),
        1,
        "cannot transform",
    ),
    "footprints without CRS": lambda t, h: (
        h.write_scene(t / "s.tif"),
        _shapefile_without_crs(t),
        1,
        "have no CRS",
    ),
}


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


@pytest.mark.parametrize("case", list(BAD_INPUTS))
@pytest.mark.parametrize("precreate", [False, True])
def test_bad_input_names_the_file_and_leaves_nothing(case, precreate, tmp_path, helpers):
    scene_path, footprints, bands, message = BAD_INPUTS[case](tmp_path, helpers)
    out = tmp_path / "out"
    if precreate:
        out.mkdir()
    with pytest.raises(InputError, match=message) as err:
        map_scene(BrightnessPredictor(in_bands=bands), scene_path, out, MapOptions(footprints=footprints, **FAST))
    culprit = footprints if footprints is not None else scene_path
    assert err.value.path == Path(culprit) and Path(culprit).name in str(err.value)
    if precreate:
        assert list(out.iterdir()) == []
    else:
        assert not out.exists()


def test_replicated_single_band_into_three_band_model(scene, tmp_path):
    spec = SceneInputSpec(replicate_single_band=True)
    res = map_scene(BrightnessPredictor(in_bands=3, band=2), scene, tmp_path / "out", MapOptions(spec=spec, **FAST))
    ref = map_scene(BrightnessPredictor(), scene, tmp_path / "ref", MapOptions(**FAST))
    for name in RASTERS:  # same pixels (the files' provenance names different models)
        with rasterio.open(res.out_dir / name) as a, rasterio.open(ref.out_dir / name) as b:
            assert np.array_equal(a.read(), b.read())
