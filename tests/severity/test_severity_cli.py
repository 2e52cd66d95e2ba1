"""`damagemap train` on CVAT polygons with the severity recipe, then `damagemap severity` end to end."""

import csv
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from damagemap.cli import app
from damagemap.severity.score import band_of
from tests.severity.test_severity_exif import write_gps_jpeg

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
POLYGONS = """  <image id="{i}" name="{name}" width="64" height="48">
    <polygon label="UD_Building" points="0,0;32,0;32,30;0,30" z_order="0"/>
    <polygon label="D_Building" points="32,0;64,0;64,30;32,30" z_order="0"/>
    <polygon label="Debris" points="0,36;64,36;64,48;0,48" z_order="0"/>
  </image>
"""


def _street(rng) -> np.ndarray:
    """A photo matching the polygons: blue-ish intact left wall, brown damaged right, grey debris."""
    img = np.full((48, 64, 3), 200, np.uint8)
    img[:30, :32] = (60, 90, 200)
    img[:30, 32:] = (150, 90, 40)
    img[36:] = (120, 120, 120)
    return np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sev")
    rng = np.random.default_rng(0)
    (root / "data" / "town" / "images").mkdir(parents=True)
    xml = ['<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n']
    for i in range(6):
        Image.fromarray(_street(rng)).save(root / "data" / "town" / "images" / f"s{i}.png")
        xml.append(POLYGONS.format(i=i, name=f"s{i}.png"))
    (root / "data" / "town" / "annotations.xml").write_text("".join(xml) + "</annotations>\n")
    result = runner.invoke(
        app,
        [
            "train",
            str(REPO / "recipes" / "severity_lite.yaml"),
            "--data",
            str(root / "data"),
            "--out",
            str(root / "model"),
            "--no-cache",
            "--set",
            "input.size=64",
            "--set",
            "train.epochs=2",
            "--set",
            "head.options.decoder_dim=16",
        ],
    )
    assert result.exit_code == 0, result.output
    return root / "model"


def test_severity_command_end_to_end(model_dir, tmp_path) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["classes"] == ["background", "undamaged", "damaged", "debris"]
    assert manifest["head"]["kind"] == "segformer_mlp" and manifest["head"]["out_channels"] == 4
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for name, lat, lon in (("north.jpg", 37.5851, 36.9371), ("south.jpg", -33.8688, -70.6693)):
        write_gps_jpeg(photos / name, lat, lon, size=(64, 48))
        Image.fromarray(_street(rng)).save(photos / name, "JPEG", exif=Image.open(photos / name).getexif())
    Image.fromarray(_street(rng)).save(photos / "nogps.png")
    (photos / "readme.txt").write_text("not a photo")
    out = tmp_path / "out"
    result = runner.invoke(app, ["severity", str(model_dir), str(photos), "--out", str(out), "--grid-m", "500"])
    assert result.exit_code == 1, result.output  # the text file is listed as an error
    assert "readme.txt" in result.output

    rows = {r["photo"]: r for r in csv.DictReader((out / "scores.csv").open())}
    assert set(rows) == {"north.jpg", "south.jpg", "nogps.png", "readme.txt"}
    assert rows["readme.txt"]["status"] == "error" and rows["readme.txt"]["score"] == ""
    for name in ("north.jpg", "south.jpg", "nogps.png"):
        r = rows[name]
        assert r["status"] == "ok" and r["depth_source"].startswith("ground-plane")
        assert (out / "overlays" / f"{Path(name).stem}.png").is_file()
        shares = sum(float(r[f"pixel_share_{c}"]) for c in ("background", "undamaged", "damaged", "debris"))
        assert shares == pytest.approx(1.0)
        if r["score"]:
            assert 0 <= float(r["score"]) <= 1 and r["band"] == band_of(
                float(r["score"]), manifest["recipe"]["severity"]["bands"]
            )
        else:
            assert r["band"] == "undefined"
    assert rows["nogps.png"]["lat"] == ""

    points = gpd.read_file(out / "severity.gpkg", layer="photos").set_index("photo")
    assert sorted(points.index) == ["north.jpg", "south.jpg"]
    assert points.loc["south.jpg"].geometry.y == pytest.approx(-33.8688, abs=1e-6)
    assert points.loc["south.jpg"].geometry.x == pytest.approx(-70.6693, abs=1e-6)
    cells = gpd.read_file(out / "severity.gpkg", layer="cells")
    assert (cells["count"] + cells["n_undefined"]).sum() == 2
    data = json.loads((out / "scores.json").read_text())
    assert len(data["photos"]) == 4 and (out / "photos.geojson").is_file() and (out / "cells.geojson").is_file()


def test_degrees_must_name_model_classes(model_dir, tmp_path) -> None:
    (tmp_path / "p").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "p" / "a.png")
    result = runner.invoke(
        app, ["severity", str(model_dir), str(tmp_path / "p"), "--out", str(tmp_path / "o"), "--degrees", "rubble=1"]
    )
    assert result.exit_code == 4 and "rubble" in result.output


def test_photos_without_structure_are_undefined_not_zero(model_dir, tmp_path) -> None:
    import torch

    from damagemap.artifact import load_model, save_model

    model = load_model(model_dir)
    with torch.no_grad():  # a head that sees background everywhere
        model.head.classifier.weight.zero_()
        model.head.classifier.bias.copy_(torch.tensor([10.0, 0.0, 0.0, 0.0]))
    save_model(model, tmp_path / "bg")
    photos = tmp_path / "photos"
    photos.mkdir()
    write_gps_jpeg(photos / "a.jpg", 10.0, 20.0, size=(64, 48))
    result = runner.invoke(app, ["severity", str(tmp_path / "bg"), str(photos), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    [row] = json.loads((tmp_path / "o" / "scores.json").read_text())["photos"]
    assert row["score"] is None and row["pixel_score"] is None and row["band"] == "undefined"
    [cell] = gpd.read_file(tmp_path / "o" / "severity.gpkg", layer="cells").itertuples()
    assert (cell.count, cell.n_undefined) == (0, 1)


def test_depth_model_option_is_used_and_recorded(model_dir, tmp_path) -> None:
    from tests.severity.test_severity_depth import _tiny_depth_anything

    _tiny_depth_anything(tmp_path / "depth")
    (tmp_path / "p").mkdir()
    Image.fromarray(_street(np.random.default_rng(3))).save(tmp_path / "p" / "a.png")
    result = runner.invoke(
        app,
        [
            "severity",
            str(model_dir),
            str(tmp_path / "p"),
            "--out",
            str(tmp_path / "o"),
            "--depth-model",
            str(tmp_path / "depth"),
        ],
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads((tmp_path / "o" / "scores.json").read_text())["photos"]
    assert row["depth_source"].startswith("DepthAnythingForDepthEstimation") and "1/x" in row["depth_source"]
    assert not (tmp_path / "o" / "severity.gpkg").exists()  # no GPS: nothing to map


def test_severity_json_summary_on_stdout_even_on_partial_failure(model_dir, tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(_street(np.random.default_rng(2))).save(photos / "a.png")
    (photos / "b.txt").write_text("not a photo")
    out = tmp_path / "out"
    result = runner.invoke(app, ["severity", str(model_dir), str(photos), "--out", str(out), "--json"])
    assert result.exit_code == 1, result.output  # partial failure: one unreadable file
    doc = json.loads(result.stdout)  # nothing but the JSON on stdout; the error line is on stderr
    assert (doc["photos"], doc["scored"], doc["errors"], doc["with_gps"]) == (2, 1, 1, 0)
    assert [r["photo"] for r in doc["rows"]] == ["a.png", "b.txt"] and doc["rows"][1]["status"] == "error"
    assert doc["rows"] == json.loads((out / "scores.json").read_text())["photos"]
    assert str(out / "scores.csv") in doc["files"] and "b.txt" in result.stderr


def test_photos_sharing_a_stem_get_one_overlay_each(model_dir, tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(_street(rng)).save(photos / "p0.png")
    Image.fromarray(_street(rng)).save(photos / "p0.jpg")
    out = tmp_path / "out"
    result = runner.invoke(app, ["severity", str(model_dir), str(photos), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader((out / "scores.csv").open()))) == 2
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert overlays == ["p0-2.png", "p0.png"]
    assert "outputs renamed" in result.output
