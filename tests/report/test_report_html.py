"""write_html_report: one self-contained page with embedded maps and the mapping tables."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

from damagemap.report.figures import overview_shape, read_overview, scene_rgb
from damagemap.report.html import write_html_report
from tests.report.mapped_event import map_synthetic_event


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    event, result = map_synthetic_event(root, seed=1)
    return root, event, result


def section(page: str, title: str) -> str:
    start = page.index(f"<h2>{title}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start : end if end > 0 else None]


def test_report_is_self_contained_with_maps_and_tables(mapped):
    root, event, result = mapped
    metrics = {"training": {"epochs": 3, "note": "<b>bold</b>"}, "buildings vs truth": {"accuracy": 0.9}}
    path = write_html_report(root / "out", result, event.scene, "Event <1>", metrics)
    assert path == root / "out" / "report.html"
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # nothing temporary left
    page = path.read_text()
    assert "<title>Event &lt;1&gt;</title>" in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 4 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "src='http" not in page and "<script" not in page

    zones = pd.read_csv(result.zones_csv)
    table = section(page, "Zonal statistics")
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    assert len(rows) == len(zones) + 1 and len(zones) > 1
    for (_, z), row in zip(zones.iterrows(), rows[1:]):
        cells = re.findall(r"<td>(.*?)</td>", row)
        assert cells[0] == str(int(z["zone_id"])) and len(cells) == len(zones.columns)

    buildings = pd.read_csv(result.buildings_csv)
    summary = section(page, "Buildings")
    assert f"<td>total</td><td>{len(buildings)}</td>" in summary
    damaged = int((buildings["damage_class"] >= 1).sum())
    assert f"<td>damaged (1)</td><td>{damaged}</td>" in summary
    stats = section(page, "Mapping statistics")
    assert "damaged area m2" in stats and "valid pixels" in stats
    assert "accuracy" in section(page, "Training and evaluation")


def test_report_without_optional_tables(mapped, tmp_path):
    root, event, result = mapped
    from dataclasses import replace

    bare = replace(result, buildings_csv=None, zones_csv=None)
    page = write_html_report(tmp_path, bare, event.scene, "bare").read_text()
    assert "<h2>Zonal statistics</h2>" not in page and "<h2>Buildings</h2>" not in page
    assert page.count("data:image/png;base64,") == 4


def test_quicklook_reads_a_bounded_overview(mapped):
    _, event, result = mapped
    shape = overview_shape(result.probability, 100)
    assert max(shape) == 100 and shape == (80, 100)
    data, valid = read_overview(event.scene, shape)
    assert data.shape == (3, 80, 100) and valid.shape == (80, 100)
    assert not valid[0, -1] and valid.mean() > 0.9  # the scene's nodata corner stays nodata
    assert np.issubdtype(data.dtype, np.integer)


def test_report_prints_offline_with_furniture_and_provenance(mapped, tmp_path):
    from tests.report.browser import dump_dom, external_references, print_pdf, screenshot

    root, event, result = mapped
    path = write_html_report(tmp_path, result, event.scene, "Printable")
    page = path.read_text(encoding="utf-8")
    assert external_references(page) == []
    assert "<h2>Provenance</h2>" in page and "DAMAGEMAP VERSION" in page and "CREATED UTC" in page
    head = page.split("<h2>Maps</h2>")[0]
    assert "Scene corners" in head and "x (scene CRS)" in head and "<th>lat</th>" in head
    assert "Buildings by damage class" in page
    dom, fetched = dump_dom(path)
    assert [u for u in fetched if not u.startswith("data:")] == []
    assert dom.count("<img") >= 4
    pdf = print_pdf(path, tmp_path / "report.pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 50_000  # the maps are in it
    png = screenshot(path, tmp_path / "report.png", size="1100,1600")
    assert png.stat().st_size > 20_000


def test_scene_quicklook_is_read_once_until_the_file_changes(tmp_path):
    import os

    import rasterio

    path = tmp_path / "scene.tif"

    def write(value: int) -> None:
        data = np.full((3, 64, 64), value, np.uint8)
        data[:, :8] = 0  # a stretch needs two values
        with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as dst:
            dst.write(data)

    write(200)
    first = scene_rgb(path, (16, 16))
    assert scene_rgb(path, (16, 16)) is first and not first.flags.writeable
    write(100)
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock's resolution
    again = scene_rgb(path, (16, 16))
    assert again is not first and again.shape == first.shape
