"""Defect 1: names and paths from user input never leave --out or the data root."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.robustness.conftest import assert_clean_failure, final_outputs, run_cli, snapshot

VIDEO_RECIPE = "recipes/video/maskrcnn_baseline.yaml"


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs-name", "a/b", ".hidden"])
def test_set_name_that_is_a_path_is_refused(ws, tmp_path, name):
    before = snapshot(tmp_path)
    out = tmp_path / "a" / "exp"
    result = run_cli(["experiment", ws.recipe, "--data", ws.data, "--out", out, "--set", f"name={name}", "--no-cache"])
    line = assert_clean_failure(result, 4, "name", repr(name), "not a plain name")
    assert "override" in line
    assert snapshot(tmp_path) == before and not out.exists()


def test_recipe_name_that_is_a_path_is_refused(ws, tmp_path):
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(ws.recipe.read_text().replace("name: robust_lite", "name: ../../../y"))
    before = snapshot(tmp_path)
    result = run_cli(["experiment", recipe, "--data", ws.data, "--out", tmp_path / "exp", "--no-cache"])
    assert_clean_failure(result, 4, str(recipe), "'../../../y'", "not a plain name")
    assert snapshot(tmp_path) == before and not (tmp_path / "exp").exists()


@pytest.mark.parametrize("option", ["--domains", "--targets"])
def test_domain_names_are_plain(ws, tmp_path, option):
    result = run_cli(["experiment", ws.recipe, "--data", ws.data, "--out", tmp_path / "e", option, "../north"])
    assert_clean_failure(result, 2, option, "not a plain name")
    assert not (tmp_path / "e").exists()


def _coco(folder, file_name):
    doc = {
        "images": [{"id": 1, "file_name": file_name, "width": 32, "height": 32, "video_id": 1, "frame_id": 1}],
        "annotations": [],
        "categories": [{"id": 1, "name": "Slight"}, {"id": 2, "name": "Severe"}, {"id": 3, "name": "Debris"}],
    }
    path = folder / "coco.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_video_coco_file_name_outside_the_data_folder_is_refused(tmp_path, kind):
    secret = tmp_path / "secret.png"  # exists, outside the data folder
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(secret)
    data = tmp_path / "data"
    data.mkdir()
    name = "../secret.png" if kind == "dotdot" else str(secret)
    coco = _coco(data, name)
    before = snapshot(tmp_path)
    result = run_cli(["video", "train", VIDEO_RECIPE, "--data", coco, "--out", tmp_path / "m", "--device", "cpu"])
    assert_clean_failure(result, 3, str(coco), repr(name), "outside the data folder")
    assert snapshot(tmp_path) == before and not (tmp_path / "m").exists()


def test_coco_polygons_image_is_never_read_outside_the_label_folder(ws, tmp_path):
    """A polygons label file naming ``../x.png`` is looked up inside its folder only (here: not found)."""
    labels = tmp_path / "data" / "north"
    labels.mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "data" / "x.png")  # exists, one level up
    doc = {
        "images": [{"id": 1, "file_name": "../x.png", "width": 16, "height": 16}],
        "annotations": [],
        "categories": [{"id": 1, "name": "damaged"}],
    }
    (labels / "a.json").write_text(json.dumps(doc))
    recipe = tmp_path / "coco.yaml"
    recipe.write_text(ws.recipe.read_text() + "data: {format: coco, labels: {damaged: damaged}}\n")
    result = run_cli(["train", recipe, "--data", tmp_path / "data", "--out", tmp_path / "m", "--no-cache"])
    assert_clean_failure(result, 3, str(labels / "a.json"), "'../x.png'", "not found")
    assert not (tmp_path / "m").exists()


def test_convert_xbd_tiles_are_plain_names(tmp_path):
    result = run_cli(["video", "convert-xbd", tmp_path, "--out", tmp_path / "c.json", "--tiles", "../../etc/x"])
    assert_clean_failure(result, 2, "--tiles", "not a plain name")
    assert final_outputs(tmp_path) == []


def test_convert_xbd_outside_the_json_folder_stays_readable_with_images(tmp_path):
    """file_name entries never climb out of the JSON's folder: relative to the xBD root instead, with a warning."""
    root = tmp_path / "xbd"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "images" / "flood-x_00000001_post_disaster.png")
    doc = {"features": {"xy": [], "lng_lat": []}, "metadata": {"width": 16, "height": 16}}
    (root / "labels" / "flood-x_00000001_post_disaster.json").write_text(json.dumps(doc))
    out = tmp_path / "elsewhere" / "c.json"
    result = run_cli(["video", "convert-xbd", root, "--out", out])
    assert result.exit_code == 0, result.output
    assert f"pass --images {root}" in " ".join(result.output.split())
    names = [im["file_name"] for im in json.loads(out.read_text())["images"]]
    assert names == ["images/flood-x_00000001_post_disaster.png"]
