"""Hand-on outputs: provenance in every file, class names and QGIS styles, reruns that never mix."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import rasterio
from shapely.geometry import box

from damagemap.errors import ConfigError
from damagemap.mapping import BrightnessPredictor, MapOptions, map_scene
from damagemap.mapping.classes import class_legend
from damagemap.mapping.provenance import utc_now

FAST = dict(tile=64, overlap=16, block=64, batch=4, grid_m=25.0)
GDAL = pytest.mark.skipif(not shutil.which("gdalinfo") or not shutil.which("ogrinfo"), reason="GDAL CLI not installed")


@dataclass
class Graded(BrightnessPredictor):
    """A 4-class predictor naming its classes like an xBD model."""

    num_outputs: int = 4
    class_names: tuple[str, ...] = ("no-damage", "minor-damage", "major-damage", "destroyed")


def _footprints():
    return gpd.GeoDataFrame(
        {"name": ["school", "depot"], "status": ["open", "closed"]},
        geometry=[box(500010, 3999990, 500020, 3999980), box(500100, 3999950, 500110, 3999940)],
        crs="EPSG:32616",
    )


def test_palette_follows_class_meaning_not_number():
    graded = class_legend(4, ["no-damage", "minor-damage", "major-damage", "destroyed"])
    assert graded.hex(0) == "#1a9641"  # intact green
    (r1, g1, _, _), (r2, g2, _, _) = graded.colors[1], graded.colors[2]
    assert r1 > 200 and g1 > 200 and r2 > 200 and 100 < g2 < g1  # minor yellow, major orange
    assert graded.hex(3) == "#67000d"  # destroyed: dark red
    flipped = class_legend(3, ["destroyed", "no-damage", "unclassified"])
    assert flipped.hex(1) == "#1a9641" and flipped.hex(0) == "#67000d" and flipped.hex(2) == "#969696"
    assert class_legend(1).names == ("no damage", "damaged")


def test_provenance_and_class_names_in_every_output(scene, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "out"
    res = map_scene(Graded(fingerprint="graded"), scene, out, MapOptions(footprints=_footprints(), **FAST))
    summary = json.loads(res.summary.read_text())
    prov = summary["provenance"]
    assert prov["created_utc"] == "2023-11-14T22:13:20Z" and prov["model"]["fingerprint"] == "graded"
    assert prov["scene"]["path"] == str(scene) and prov["tile"] == 64 and prov["overlap"] == 16
    assert [c["name"] for c in summary["classes"]] == list(Graded.class_names)
    with rasterio.open(res.damage_class) as src:
        tags = src.tags()
        assert tags["DAMAGEMAP_VERSION"] == prov["damagemap_version"] and tags["MODEL_FINGERPRINT"] == "graded"
        assert tags["SCENE_PATH"] == str(scene) and tags["CREATED_UTC"] == prov["created_utc"]
        assert "3 destroyed" in src.descriptions[0]
        assert src.colormap(1)[3][:3] == (103, 0, 13)
    with rasterio.open(res.probability) as src:
        assert src.tags()["THRESHOLD"] == "0.5"
    assert pyogrio.read_info(res.vectors)["dataset_metadata"]["MODEL_FINGERPRINT"] == "graded"
    buildings = pd.read_csv(res.buildings_csv)
    assert buildings["building_id"].tolist() == [1, 2]  # = the GeoPackage fid
    assert buildings["name"].tolist() == ["school", "depot"] and buildings["fp_status"].tolist() == ["open", "closed"]
    layer = pyogrio.read_dataframe(res.vectors, layer="buildings", fid_as_index=True)
    assert layer.index.tolist() == layer["building_id"].tolist()
    zones = pd.read_csv(res.zones_csv)
    assert {"x", "y", "lon", "lat"} <= set(zones.columns) and zones["lat"].between(36, 37).all()
    for qml in ("damage_class", "damage_probability", "uncertainty", "buildings", "zones", "damaged_regions"):
        ElementTree.parse(out / f"{qml}.qml")  # well-formed XML
    with sqlite3.connect(res.vectors) as db:
        rows = db.execute("select f_table_name, useAsDefault, styleQML from layer_styles").fetchall()
    assert {r[0] for r in rows} == {"damaged_regions", "buildings", "zones"} and all(r[1] for r in rows)
    assert all(r[2].startswith("<qgis") for r in rows)


@GDAL
def test_gdal_tools_see_class_names_styles_and_metadata(scene, tmp_path):
    out = tmp_path / "out"
    res = map_scene(Graded(), scene, out, MapOptions(footprints=_footprints(), **FAST))
    info = json.loads(
        subprocess.run(["gdalinfo", "-json", str(res.damage_class)], capture_output=True, text=True, check=True).stdout
    )
    band = info["bands"][0]
    assert band["categories"] == list(Graded.class_names)
    rat = info.get("rat") or band.get("rat")
    assert rat is not None and [r["f"][1] for r in rat["row"]] == list(Graded.class_names)
    assert info["metadata"][""]["MODEL_FINGERPRINT"] == Graded().fingerprint
    listing = subprocess.run(["ogrinfo", "-ro", str(res.vectors)], capture_output=True, text=True, check=True).stdout
    assert "layer_styles" in listing and "buildings" in listing
    styles = subprocess.run(
        ["ogrinfo", "-ro", "-q", str(res.vectors), "-sql", "SELECT f_table_name FROM layer_styles"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "f_table_name (String) = buildings" in styles
    meta = subprocess.run(
        ["ogrinfo", "-ro", "-so", str(res.vectors), "buildings"], capture_output=True, text=True, check=True
    ).stdout
    assert "EPSG" in meta or "32616" in meta or "UTM zone 16N" in meta


# rio is installed beside this interpreter (the venv's bin/), which need not be on PATH
RIO = shutil.which("rio", path=str(Path(sys.executable).parent)) or shutil.which("rio")


@pytest.mark.skipif(RIO is None, reason="rio (rio-cogeo) not installed")
def test_cogs_validate_strictly(scene, tmp_path):
    res = map_scene(Graded(), scene, tmp_path / "out", MapOptions(**FAST))
    for path in (res.probability, res.damage_class, res.uncertainty):
        done = subprocess.run([str(RIO), "cogeo", "validate", "--strict", str(path)], capture_output=True, text=True)
        assert done.returncode == 0 and "is a valid cloud optimized GeoTIFF" in done.stdout, done.stdout + done.stderr


def test_rerun_with_other_parameters_refuses_naming_it(scene, tmp_path):
    out = tmp_path / "out"
    map_scene(BrightnessPredictor(), scene, out, MapOptions(**FAST))
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(ConfigError, match=r"--threshold: was 0.5, now 0.6.*--overwrite"):
        map_scene(BrightnessPredictor(), scene, out, MapOptions(**{**FAST, "threshold": 0.6}))
    with pytest.raises(ConfigError, match="--grid-m"):
        map_scene(BrightnessPredictor(), scene, out, MapOptions(**{**FAST, "grid_m": 50.0}))
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # untouched
    map_scene(BrightnessPredictor(), scene, out, MapOptions(**FAST))  # the same run again is fine


def test_overwrite_replaces_every_output_of_the_old_run(scene, tmp_path):
    out = tmp_path / "out"
    map_scene(BrightnessPredictor(), scene, out, MapOptions(footprints=_footprints(), **FAST))
    (out / "report.html").write_text("old report")
    (out / "notes.txt").write_text("mine")
    res = map_scene(BrightnessPredictor(), scene, out, MapOptions(overwrite=True, **{**FAST, "grid_m": None}))
    names = {p.name for p in out.iterdir()}
    assert "buildings.csv" not in names and "zones.csv" not in names and "report.html" not in names
    assert "buildings.qml" not in names and "notes.txt" in names  # others' files are left alone
    assert json.loads(res.summary.read_text())["run"]["footprints"] is None


def test_outputs_of_an_unrecorded_run_are_refused(scene, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "damage_class.tif").write_bytes(b"not ours?")
    with pytest.raises(ConfigError, match="not recorded"):
        map_scene(BrightnessPredictor(), scene, out, MapOptions(**FAST))


def test_run_time_is_now_without_source_date_epoch(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert utc_now().startswith("20") and utc_now() != "2023-11-14T22:13:20Z"
