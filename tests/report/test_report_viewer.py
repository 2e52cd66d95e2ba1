"""viewer.html: offline Leaflet map of a mapping run, opened in headless Chromium (network blocked)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from damagemap.report.viewer import leaflet_assets, write_viewer
from tests.report.browser import dump_dom, external_references, screenshot
from tests.report.mapped_event import map_synthetic_event


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer")
    event, result = map_synthetic_event(root, seed=2)
    return write_viewer(root / "map", result, title="Test event <viewer>"), result


def payload(page: str) -> dict:
    found = re.search(r"<script>const DM=(.*?);</script>", page, re.S)
    assert found
    return json.loads(found.group(1).replace("<\\/", "</"))


def test_leaflet_assets_come_inlined_from_the_wheel():
    js, css = leaflet_assets()
    assert "L.map" in js or "function Map" in js or len(js) > 100_000
    assert "url(images/" not in css and "data:image/png;base64," in css


def test_viewer_page_is_self_contained_with_every_layer(viewer):
    path, _ = viewer
    page = path.read_text(encoding="utf-8")
    # Leaflet's own source holds its home-page link (an <a href>, never fetched; the prefix is off).
    assert set(external_references(page)) <= {"https://leafletjs.com"}
    assert "&lt;viewer&gt;" in page and "<viewer>" not in page
    data = payload(page)
    assert [r["name"] for r in data["rasters"]] == ["Damage probability", "Damage class", "Uncertainty"]
    for r in data["rasters"]:
        assert r["url"].startswith("data:image/png;base64,")
        (south, west), (north, east) = r["bounds"]
        assert -90 <= south < north <= 90 and -180 <= west < east <= 180
    assert {"buildings", "zones"} <= set(data["vectors"])
    building = data["vectors"]["buildings"]["geojson"]["features"][0]
    assert {"damage_class", "building_id", "lon", "lat"} <= set(building["properties"])


def test_viewer_loads_offline_in_chromium(viewer, tmp_path):
    path, _ = viewer
    dom, fetched = dump_dom(path)
    # Every resource was inline (data: URIs); nothing was fetched from a network.
    assert [u for u in fetched if not u.startswith("data:")] == []
    status = re.search(r'id="dm-status"[^>]*', dom)
    assert status and 'data-ready="1"' in status.group(0)
    loaded = re.search(r'data-loaded="([^"]*)"', status.group(0)).group(1).split("|")
    assert "FAILED" not in "|".join(loaded)
    for name in ("Damage probability", "Damage class", "Uncertainty", "Buildings by damage", "Zones (damaged share)"):
        assert name in loaded
    assert "leaflet-container" in dom and "leaflet-image-layer" in dom
    assert dom.count("leaflet-interactive") > 5  # building / region paths drawn
    assert "dm-legend" in dom and "leaflet-control-layers" in dom and "leaflet-control-scale" in dom

    png = screenshot(path, tmp_path / "viewer.png")
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50  # not blank: overlays, legend, controls


def test_basemap_is_only_added_when_asked(viewer, tmp_path):
    _, result = viewer
    page = write_viewer(tmp_path, result, basemap="https://tiles.example/{z}/{x}/{y}.png").read_text()
    assert payload(page)["basemap"] == "https://tiles.example/{z}/{x}/{y}.png"
    assert payload(viewer[0].read_text())["basemap"] is None
