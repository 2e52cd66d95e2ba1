"""`damagemap map` on scenes that are not local files: a /vsicurl/ URL and a STAC item, served locally."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest
from typer.testing import CliRunner

from damagemap.cli import app
from tests.cli.test_cli import RECIPE, _write_domain
from tests.geo.test_remote_scenes import _item
from tests.mapping.conftest import content_digests, pattern, write_scene
from tests.rangeserver import serve

runner = CliRunner()
MAP = ["--replicate-single-band", "--tile", "64", "--overlap", "16", "--grid-m", "0"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-remote")
    _write_domain(root / "data", "north", 4, 1)
    (root / "tiny.yaml").write_text(RECIPE)
    args = ["train", str(root / "tiny.yaml"), "--data", str(root / "data"), "--out", str(root / "model")]
    result = runner.invoke(app, [*args, "--epochs", "1", "--no-cache"])
    assert result.exit_code == 0, result.output
    return root / "model"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    write_scene(root / "scene.tif", driver="COG", blocksize=128)
    write_scene(root / "alt.tif", data=pattern(200, 300)[None, ::-1].copy(), driver="COG", blocksize=128)
    cog = pystac.MediaType.COG
    _item(root / "item.json", {"visual": ("scene.tif", cog), "alt": ("alt.tif", cog)})
    with serve(root) as server:
        yield root, server


@pytest.fixture(autouse=True)
def no_gdal_tricks(monkeypatch):
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    monkeypatch.setenv("CPL_VSIL_CURL_ALLOWED_EXTENSIONS", ".tif")


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long messages at the terminal width


def test_map_a_vsicurl_scene_end_to_end(model, served, tmp_path):
    root, server = served
    url = f"/vsicurl/{server.url}/scene.tif"
    result = runner.invoke(app, ["map", str(model), url, "--out", str(tmp_path / "remote"), *MAP])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "remote" / "summary.json").read_text())["scene"]["path"] == url
    local = runner.invoke(app, ["map", str(model), str(root / "scene.tif"), "--out", str(tmp_path / "local"), *MAP])
    assert local.exit_code == 0, local.output
    a, b = content_digests(tmp_path / "local"), content_digests(tmp_path / "remote")
    assert {k: v for k, v in a.items() if k != "summary.json"} == {k: v for k, v in b.items() if k != "summary.json"}


def test_map_a_stac_item_with_asset(model, served, tmp_path):
    _, server = served
    item = f"{server.url}/item.json"
    result = runner.invoke(app, ["map", str(model), item, "--asset", "alt", "--out", str(tmp_path / "out"), *MAP])
    assert result.exit_code == 0, result.output
    assert f"{server.url}/alt.tif" in _flat(result.output)
    scene = json.loads((tmp_path / "out" / "summary.json").read_text())["scene"]
    assert scene["path"] == item and scene["asset"] == "alt" and scene["href"] == f"{server.url}/alt.tif"


@pytest.mark.parametrize(
    ("scene", "asset", "expected", "code"),
    [
        ("{url}/item.json", "nir", "has no asset 'nir'; its assets: visual", 3),
        ("/vsicurl/{url}/missing.tif", None, "/vsicurl/{url}/missing.tif: cannot open the remote scene: HTTP 404", 3),
        ("/vsicurl/{url}/scene.tif", "visual", "--asset 'visual' applies to STAC items only", 4),
    ],
)
def test_bad_remote_input_is_a_clean_error(model, served, tmp_path, scene, asset, expected, code):
    _, server = served
    args = ["map", str(model), scene.format(url=server.url), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args + (["--asset", asset] if asset else []))
    assert result.exit_code == code, result.output  # 3: input error, 4: configuration error
    assert expected.format(url=server.url) in _flat(result.output) and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_help_lists_the_scene_forms():
    result = runner.invoke(app, ["map", "--help"], env={"COLUMNS": "200"})
    text = _flat(result.output)
    for form in ("/vsicurl/https://", "s3://", "STAC item", "--asset"):
        assert form in text


def test_suggest_on_a_stac_item_matches_the_local_scene(model, served, tmp_path):
    root, server = served
    args = ["--n", "3", "--tile", "64", "--replicate-single-band"]
    remote = runner.invoke(
        app,
        ["suggest", str(model), f"{server.url}/item.json", "--asset", "alt", "--out", str(tmp_path / "r.gpkg"), *args],
    )
    assert remote.exit_code == 0, remote.output
    local = runner.invoke(app, ["suggest", str(model), str(root / "alt.tif"), "--out", str(tmp_path / "l.gpkg"), *args])
    assert local.exit_code == 0, local.output
    import geopandas as gpd

    a, b = gpd.read_file(tmp_path / "r.gpkg"), gpd.read_file(tmp_path / "l.gpkg")
    assert list(a["row"]) == list(b["row"]) and list(a["col"]) == list(b["col"])
    assert (tmp_path / "r.png").stat().st_size > 0
