"""The real single-band uint16 UTM scene from the shared data and its 43 OSM footprints."""

from __future__ import annotations

import shutil
import subprocess

import geopandas as gpd
import pandas as pd
import pytest
import rasterio

from damagemap.mapping import BrightnessPredictor, MapOptions, SceneInputSpec, map_scene


@pytest.fixture
def sample(shared_data):
    scene, labels = shared_data / "geo" / "sample_geotiff.tif", shared_data / "geo" / "geotiff_labels.geojson"
    if not scene.exists() or not labels.exists():
        pytest.skip(f"{scene} or {labels} not present")
    return scene, labels


def test_real_scene_with_real_footprints(sample, tmp_path):
    scene, labels = sample
    # a 3-band model fed by replicating the single band; brightness scaled to the scene's range
    spec = SceneInputSpec(scale=(0, 2000), replicate_single_band=True)
    res = map_scene(BrightnessPredictor(in_bands=3), scene, tmp_path / "out", MapOptions(spec=spec, footprints=labels))
    with rasterio.open(scene) as ref:
        for path in (res.probability, res.damage_class, res.uncertainty):
            with rasterio.open(path) as out:
                assert out.crs == ref.crs and out.transform == ref.transform
                assert (out.width, out.height) == (ref.width, ref.height)
                assert out.overviews(1) and out.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    table = pd.read_csv(res.buildings_csv)
    layer = gpd.read_file(res.vectors, layer="buildings")
    n = len(gpd.read_file(labels))
    assert n == 43 and len(table) == len(layer) == n
    assert table["building_id"].is_unique  # osm_id
    assert (table["status"] == "ok").all() and table["damaged_fraction"].between(0, 1).all()
    zones = pd.read_csv(res.zones_csv)
    assert zones["building_count"].sum() == n
    for tool, target in (("gdalinfo", res.probability), ("ogrinfo", res.vectors)):
        if shutil.which(tool):
            args = [tool, "-so", "-al", str(target)] if tool == "ogrinfo" else [tool, str(target)]
            subprocess.run(args, capture_output=True, check=True)
