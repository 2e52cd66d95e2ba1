"""Scenes that are not local files: /vsicurl/ URLs and STAC items, served by a local range server."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import pytest

from damagemap.data.geo_labels import read_geotiff_labels
from damagemap.errors import ConfigError, InputError
from damagemap.geo.raster import GDAL_CACHE_MB, close_datasets, gdal_env, open_scene, read_tiles
from damagemap.geo.sources import REMOTE_GDAL_DEFAULTS, http_status, resolve_scene
from damagemap.geo.spec import SceneInputSpec
from damagemap.mapping import BrightnessPredictor, MapOptions, map_scene
from damagemap.mapping.checkpoint import WORK_DIRNAME, scene_identity
from damagemap.report.figures import scene_rgb
from tests.mapping.conftest import content_digests, pattern, write_scene
from tests.rangeserver import free_port, serve, silent_server

FAST = dict(tile=64, overlap=16, block=64, batch=2, grid_m=25.0)
ORIGINS = [(0, 0), (100, 200), (150, 260)]  # the last two reach past the scene edge (padding)


@pytest.fixture(autouse=True)
def no_gdal_tricks(monkeypatch):
    """The range server lists no directories and has nothing but .tif files for GDAL."""
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    monkeypatch.setenv("CPL_VSIL_CURL_ALLOWED_EXTENSIONS", ".tif")


def _item(path: Path, assets: dict[str, tuple[str, str | None]], item_id: str = "event-1", self_href=None) -> Path:
    item = pystac.Item(item_id, geometry=None, bbox=None, datetime=dt.datetime(2024, 1, 1), properties={})
    for key, (href, media) in assets.items():
        item.add_asset(key, pystac.Asset(href, media_type=media))
    path.parent.mkdir(parents=True, exist_ok=True)
    item.save_object(include_self_link=False, dest_href=str(path))
    if self_href:  # a "self" link elsewhere (as in items copied from a catalogue): must not matter
        doc = json.loads(path.read_text())
        doc["links"].append({"rel": "self", "href": self_href, "type": "application/json"})
        path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A folder with two COGs and STAC items, served over HTTP for the whole module."""
    root = tmp_path_factory.mktemp("served")
    write_scene(root / "scene.tif", driver="COG", blocksize=128)
    base = pattern(200, 300)
    write_scene(root / "alt.tif", data=np.stack([base[::-1, ::-1]]), driver="COG", blocksize=128)
    (root / "thumb.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    cog = pystac.MediaType.COG
    _item(
        root / "items" / "item.json",  # relative hrefs, resolved against the item's URL
        {
            "thumbnail": ("../thumb.png", pystac.MediaType.PNG),
            "visual": ("../scene.tif", cog),
            "alt": ("../alt.tif", cog),
        },
        self_href="https://example.invalid/elsewhere/item.json",
    )
    _item(root / "items" / "novisual.json", {"thumbnail": ("../thumb.png", "image/png"), "data": ("../alt.tif", None)})
    with serve(root) as server:
        yield root, server


def _url(server, name: str = "scene.tif") -> str:
    return f"/vsicurl/{server.url}/{name}"


def _outputs_equal(local: Path, remote: Path, scene_path: str) -> None:
    """Every output byte-identical; summary.json differs only in how the scene is recorded."""
    a, b = content_digests(local), content_digests(remote)
    assert {k: v for k, v in a.items() if k != "summary.json"} == {k: v for k, v in b.items() if k != "summary.json"}
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (local, remote))
    assert sb["scene"]["path"] == scene_path
    for s in (sa, sb):
        s["scene"] = {k: v for k, v in s["scene"].items() if k not in ("path", "asset", "href")}
        s.pop("provenance", None)  # names the scene path and the time
        s.pop("run", None)  # the rerun record names the scene as given
    assert sa == sb


# -- (a) pixels ------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["vsicurl", "http"])
def test_open_scene_and_read_tiles_match_the_local_file(served, form):
    root, server = served
    close_datasets()  # the other form's open handle (and its cached blocks) would answer every read
    remote = _url(server) if form == "vsicurl" else f"{server.url}/scene.tif"
    local_info = open_scene(root / "scene.tif", SceneInputSpec(), 1)
    before = len(server.requests)
    info = open_scene(remote, SceneInputSpec(), 1)
    assert info.plan.path == _url(server) and info.source.remote and not info.source.local
    assert info.source.name == remote
    assert (info.width, info.height, info.crs, info.transform) == (
        local_info.width,
        local_info.height,
        local_info.crs,
        local_info.transform,
    )
    for size in (64, 128):
        x, valid = read_tiles(info.plan, ORIGINS, size)
        x_ref, valid_ref = read_tiles(local_info.plan, ORIGINS, size)
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(valid, valid_ref)
    gets = [r for r in server.requests[before:] if r[0] == "GET"]
    assert gets and all(rng for _, _, rng in gets)  # byte ranges only: never a whole-file download


def test_gdal_env_sets_remote_defaults_only_for_remote_paths(monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "7")
    with gdal_env("/vsicurl/http://127.0.0.1:1/x.tif") as env:
        options = env.options
    assert options["GDAL_HTTP_CONNECTTIMEOUT"] == REMOTE_GDAL_DEFAULTS["GDAL_HTTP_CONNECTTIMEOUT"]
    assert "GDAL_HTTP_TIMEOUT" not in options  # the user's environment wins
    with gdal_env("scene.tif") as env:
        assert "GDAL_DISABLE_READDIR_ON_OPEN" not in env.options


def test_gdal_env_caps_the_block_cache_in_megabytes(monkeypatch):
    # rasterio hands an integer GDAL_CACHEMAX to GDAL in bytes: a bare 64 was a 64-byte cache,
    # under which every block was decoded again (a nearest overview read took 1 s instead of 5 ms)
    from rasterio._env import get_gdal_config

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    with gdal_env("scene.tif"):
        assert int(get_gdal_config("GDAL_CACHEMAX")) == GDAL_CACHE_MB * 1024 * 1024
    monkeypatch.setenv("GDAL_CACHEMAX", "512")
    with gdal_env("scene.tif") as env:
        assert "GDAL_CACHEMAX" not in env.options  # the user's setting wins


def test_resolver_forms():
    assert resolve_scene("s3://bucket/key/scene.tif").gdal_path == "/vsis3/bucket/key/scene.tif"
    assert resolve_scene("gs://b/k.tif").gdal_path == "/vsigs/b/k.tif"
    s = resolve_scene(Path("https://example.com/a/scene.tif"))  # a Path merged the "//": repaired
    assert s.gdal_path == "/vsicurl/https://example.com/a/scene.tif" and s.stem == "scene" and s.remote
    z = resolve_scene("/vsizip//vsicurl/https://example.com/a.zip/scene.tif")
    assert z.gdal_path == z.name and z.remote and not z.local
    local = resolve_scene("file:///data/scene.tif")
    assert local.gdal_path == "/data/scene.tif" and local.local and not local.remote
    assert resolve_scene(local) is local
    with pytest.raises(InputError, match=r"unsupported URL scheme ftps://"):
        resolve_scene("ftps://example.com/scene.tif")
    with pytest.raises(ConfigError, match="applies to STAC items only"):
        resolve_scene("scene.tif", asset="visual")


def test_remote_identity_tracks_the_served_file(served, tmp_path):
    root, server = served
    folder = tmp_path / "www"
    folder.mkdir()
    shutil.copy(root / "scene.tif", folder / "scene.tif")
    with serve(folder) as other:
        first = scene_identity(_url(other))
        assert first == scene_identity(_url(other))  # stable
        assert first["http"]["etag"] and first["http"]["content-length"] == str((folder / "scene.tif").stat().st_size)
        assert first["raster"]["width"] == 300 and len(first["sample_sha256"]) == 64
        write_scene(folder / "scene.tif", driver="COG", blocksize=128, nodata_box=(0, 10, 0, 10))
        changed = scene_identity(f"/vsicurl/{other.url}/scene.tif?v=2")  # a fresh URL: no GDAL cache
        assert changed["http"] != first["http"] and changed["sample_sha256"] != first["sample_sha256"]


# -- (b) mapping -----------------------------------------------------------------------------------
def test_map_scene_remote_is_byte_identical_to_local(served, tmp_path):
    root, server = served
    map_scene(BrightnessPredictor(), root / "scene.tif", tmp_path / "local", MapOptions(**FAST))
    res = map_scene(BrightnessPredictor(), _url(server), tmp_path / "remote", MapOptions(**FAST))
    assert res.stats["tiles_predicted"] > 0
    _outputs_equal(tmp_path / "local", tmp_path / "remote", _url(server))


@dataclass
class Crashing(BrightnessPredictor):
    after: int = 0
    calls: int = 0

    def __call__(self, tiles):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("simulated crash")
        return super().__call__(tiles)


@dataclass
class ServerDies(BrightnessPredictor):
    """The server starts answering 503 after ``after`` model calls."""

    after: int = 0
    calls: int = 0
    server: object = None

    def __call__(self, tiles):
        self.calls += 1
        if self.calls >= self.after:
            self.server.failing = True  # type: ignore[attr-defined]
        return super().__call__(tiles)


def test_remote_scene_resumes_after_a_crash(served, tmp_path):
    root, server = served
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        map_scene(Crashing(after=9, fingerprint="fp"), _url(server), out, MapOptions(**FAST))
    res = map_scene(BrightnessPredictor(fingerprint="fp"), _url(server), out, MapOptions(**FAST))
    assert res.stats["blocks_resumed"] > 0
    map_scene(BrightnessPredictor(fingerprint="fp"), _url(server), tmp_path / "ref", MapOptions(**FAST))
    assert content_digests(out) == content_digests(tmp_path / "ref")


def test_http_status_names_what_the_server_answers_now(served):
    root, server = served
    assert http_status(_url(server)) is None  # answers the range request
    assert http_status(_url(server, "missing.tif")) == 404
    assert http_status("/vsis3/bucket/scene.tif") is None  # not plain http(s): not asked
    server.failing = True
    try:
        assert http_status(_url(server)) == 503
    finally:
        server.failing = False


def test_server_going_down_mid_run_keeps_blocks_for_a_rerun(tmp_path, monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    folder = tmp_path / "www"
    folder.mkdir()
    rng = np.random.default_rng(0)  # incompressible: GDAL must fetch as it goes
    write_scene(
        folder / "big.tif", data=rng.integers(1, 256, (1, 512, 512), dtype=np.uint8), driver="COG", blocksize=128
    )
    out = tmp_path / "out"
    with serve(folder) as server:
        url = f"/vsicurl/{server.url}/big.tif"
        with pytest.raises(InputError, match="HTTP 503.*rerun the same command") as err:
            map_scene(ServerDies(after=20, fingerprint="fp", server=server), url, out, MapOptions(**FAST))
        assert err.value.location == url
        assert (out / WORK_DIRNAME / "blocks").is_dir() and any((out / WORK_DIRNAME / "blocks").iterdir())
        server.failing = False
        res = map_scene(BrightnessPredictor(fingerprint="fp"), url, out, MapOptions(**FAST))
    assert res.stats["blocks_resumed"] > 0
    map_scene(BrightnessPredictor(fingerprint="fp"), folder / "big.tif", tmp_path / "local", MapOptions(**FAST))
    _outputs_equal(tmp_path / "local", out, url)


# -- (c) STAC items --------------------------------------------------------------------------------
def test_stac_items_local_and_served_map_like_the_file(served, tmp_path):
    root, server = served
    local_item = _item(tmp_path / "item.json", {"visual": (f"{server.url}/scene.tif", pystac.MediaType.COG)})
    served_item = f"{server.url}/items/item.json"
    for item in (local_item, served_item):
        source = resolve_scene(item)
        assert source.asset == "visual" and source.gdal_path == _url(server) and source.remote
        assert source.href == f"{server.url}/scene.tif" and source.stem == "event-1"
    map_scene(BrightnessPredictor(), root / "scene.tif", tmp_path / "ref", MapOptions(**FAST))
    map_scene(BrightnessPredictor(), str(local_item), tmp_path / "local-item", MapOptions(**FAST))
    map_scene(BrightnessPredictor(), served_item, tmp_path / "served-item", MapOptions(**FAST))
    _outputs_equal(tmp_path / "ref", tmp_path / "local-item", str(local_item))
    _outputs_equal(tmp_path / "ref", tmp_path / "served-item", served_item)
    summary = json.loads((tmp_path / "served-item" / "summary.json").read_text())["scene"]
    assert summary["asset"] == "visual" and summary["href"] == f"{server.url}/scene.tif"


def test_stac_item_with_workers_reads_the_asset_href(served, tmp_path):
    root, server = served
    item = f"{server.url}/items/item.json"
    map_scene(BrightnessPredictor(), root / "scene.tif", tmp_path / "ref", MapOptions(**FAST))
    res = map_scene(BrightnessPredictor(), item, tmp_path / "dask", MapOptions(workers=1, **FAST))
    assert res.stats["workers"] == 1
    _outputs_equal(tmp_path / "ref", tmp_path / "dask", item)


def test_asset_picks_a_non_default_asset(served):
    root, server = served
    item = f"{server.url}/items/item.json"
    info = open_scene(resolve_scene(item, asset="alt"), SceneInputSpec(), 1)
    assert info.plan.path == _url(server, "alt.tif") and info.source.name == f"{item} [asset alt]"
    x, _ = read_tiles(info.plan, ORIGINS, 64)
    x_ref, _ = read_tiles(open_scene(root / "alt.tif", SceneInputSpec(), 1).plan, ORIGINS, 64)
    np.testing.assert_array_equal(x, x_ref)
    no_visual = resolve_scene(f"{server.url}/items/novisual.json")  # first GeoTIFF: by .tif href
    assert no_visual.asset == "data" and no_visual.gdal_path == _url(server, "alt.tif")


def test_local_item_with_local_relative_asset(served, tmp_path):
    root, _ = served
    shutil.copy(root / "scene.tif", tmp_path / "scene.tif")
    item = _item(tmp_path / "stac" / "item.json", {"visual": ("../scene.tif", pystac.MediaType.COG)})
    source = resolve_scene(item)
    assert source.local and source.gdal_path == str(tmp_path / "scene.tif")
    assert source.to_json() == {"path": str(item), "asset": "visual", "href": str(tmp_path / "scene.tif")}
    samples = read_geotiff_labels(source, _labels(tmp_path), tile=64)
    assert samples and samples[0].domain == "event-1" and samples[0].meta["scene"] == f"{item} [asset visual]"
    (tmp_path / "scene.tif").unlink()
    with pytest.raises(InputError, match=r"\[asset visual\]: asset file .*scene.tif not found"):
        open_scene(item, SceneInputSpec(), 1)


def _labels(folder: Path) -> Path:
    import geopandas as gpd
    from shapely.geometry import box

    path = folder / "labels.geojson"
    gpd.GeoDataFrame(
        {"damage": [1, 0]},
        geometry=[box(500040, 3999960, 500060, 3999940), box(500080, 3999960, 500100, 3999940)],
        crs="EPSG:32616",
    ).to_file(path)
    return path


def test_training_tiles_from_a_remote_scene_match_local(served, tmp_path):
    root, server = served
    labels = _labels(tmp_path)
    remote = read_geotiff_labels(_url(server), labels, tile=64)
    local = read_geotiff_labels(root / "scene.tif", labels, tile=64)
    assert [s.id for s in remote] == [s.id for s in local] and remote[0].domain == "scene"
    for a, b in zip(remote, local):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)
    assert remote[0].meta["scene"] == _url(server)


def test_quicklook_of_a_remote_scene(served):
    root, server = served
    np.testing.assert_array_equal(scene_rgb(_url(server), (50, 75)), scene_rgb(root / "scene.tif", (50, 75)))


def test_unknown_asset_lists_the_assets(served):
    _, server = served
    item = f"{server.url}/items/item.json"
    with pytest.raises(InputError, match=r"has no asset 'nir'; its assets: thumbnail \(image/png\), visual") as err:
        resolve_scene(item, asset="nir")
    assert err.value.location == item and "alt (image/tiff; application=geotiff; profile=cloud-optimized)" in str(
        err.value
    )


def test_item_without_a_geotiff_asset(tmp_path):
    item = _item(tmp_path / "item.json", {"thumbnail": ("thumb.png", "image/png")})
    with pytest.raises(InputError, match=r"no 'visual' or GeoTIFF/COG asset; pick one with --asset"):
        resolve_scene(item)
    (tmp_path / "collection.json").write_text(json.dumps({"type": "Collection", "id": "c"}))
    with pytest.raises(InputError, match="not a STAC item"):
        resolve_scene(tmp_path / "collection.json")
    with pytest.raises(InputError, match="STAC item file not found"):
        resolve_scene(tmp_path / "missing.json")


# -- (d) failures ----------------------------------------------------------------------------------
def _quick_error(scene, match: str) -> InputError:
    started = time.perf_counter()
    with pytest.raises(InputError, match=match) as err:
        open_scene(scene, SceneInputSpec(), 1)
    assert time.perf_counter() - started < 5
    assert "\n" not in str(err.value)
    return err.value


def test_missing_remote_scene_is_one_clear_error(served, tmp_path):
    _, server = served
    url = _url(server, "missing.tif")
    err = _quick_error(url, r"cannot open the remote scene: HTTP 404 \(not found\)")
    assert err.location == url and str(err).startswith(url + ": ")
    item = f"{server.url}/items/missing.json"
    assert _quick_error(item, r"cannot read the STAC item: HTTP 404 \(not found\)").location == item
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="HTTP 404"):
        map_scene(BrightnessPredictor(), url, tmp_path / "out", MapOptions(**FAST))
    assert not (tmp_path / "out").exists()


def test_unreachable_server_is_one_clear_error():
    port = free_port()
    url = f"/vsicurl/http://127.0.0.1:{port}/scene.tif"
    err = _quick_error(url, r"cannot open the remote scene: cannot reach the server \(.*127\.0\.0\.1")
    assert err.location == url
    item = f"http://127.0.0.1:{port}/item.json"
    assert _quick_error(item, r"cannot read the STAC item: .*refused").location == item


def test_server_that_never_answers_times_out(monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    with silent_server() as port:
        url = f"/vsicurl/http://127.0.0.1:{port}/scene.tif"
        _quick_error(url, r"cannot open the remote scene: timed out .*GDAL_HTTP_TIMEOUT=1 s")
        _quick_error(f"http://127.0.0.1:{port}/item.json", r"cannot read the STAC item: .*timed out")


def test_missing_local_file_is_still_named_as_such(tmp_path):
    with pytest.raises(InputError, match="scene file not found"):
        open_scene(str(tmp_path / "nope.tif"), SceneInputSpec(), 1)
