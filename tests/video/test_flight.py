"""Synthetic flight over a real xBD tile: mp4 + GPX → `damagemap video predict` → refined scores → heat map.

The frames are a crop window moving across the post-disaster tile, warped by a perspective
transform (the far edge of an oblique ~45° view is compressed). The model is random: this
checks the pipeline end to end, not accuracy.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from damagemap.cli import app
from damagemap.video.artifact import save_video_model
from damagemap.video.model import build_msnet
from tests.video.media import START, write_gpx, write_mp4
from tests.video.tiny import tiny_recipe

N_FRAMES, FPS, OUT = 8, 2, 128


def _perspective_coeffs(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> np.ndarray:
    """PIL PERSPECTIVE coefficients mapping output points ``dst`` to input points ``src``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, float), np.array(rhs, float))


def _flight_frames(tile: Image.Image) -> list[np.ndarray]:
    frames = []
    for i in range(N_FRAMES):
        x0 = y0 = 100 + 60 * i
        w = 400
        # the window's far (top) edge is wider on the ground than its near edge: oblique view
        src = [(x0 - 80, y0), (x0 + w + 80, y0), (x0 + w, y0 + w), (x0, y0 + w)]
        dst = [(0, 0), (OUT, 0), (OUT, OUT), (0, OUT)]
        warped = tile.transform((OUT, OUT), Image.PERSPECTIVE, tuple(_perspective_coeffs(src, dst)), Image.BILINEAR)
        frames.append(np.asarray(warped))
    return frames


def test_flight_predict_refine_heatmap(shared_data, tmp_path):
    tile_path = shared_data / "xbd" / "images" / "joplin-tornado_00000000_post_disaster.png"
    if not tile_path.is_file():
        pytest.skip(f"real xBD tile not present: {tile_path}")
    frames = _flight_frames(Image.open(tile_path).convert("RGB"))
    assert not np.array_equal(frames[0], frames[1])
    video = write_mp4(tmp_path / "flight.mp4", frames, fps=FPS, creation_time=START)
    times = [0.0, 2.0, 4.0]
    lats, lons = [37.0600, 37.0610, 37.0620], [-94.5100, -94.5090, -94.5080]
    gpx = write_gpx(tmp_path / "flight.gpx", times, lats, lons)

    torch.manual_seed(0)
    recipe = tiny_recipe(box_score_thresh=0.0)
    recipe.refine.c0, recipe.refine.c1 = 0.0, 1.0  # random model: make every detection refinable
    save_video_model(build_msnet(recipe), recipe, tmp_path / "model")

    result = CliRunner().invoke(
        app,
        [
            "video",
            "predict",
            str(tmp_path / "model"),
            str(video),
            "--out",
            str(tmp_path / "out"),
            "--gps",
            str(gpx),
            "--every",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert [f["frame"] for f in doc["frames"]] == [0, 2, 4, 6]
    np.testing.assert_allclose([f["time"] for f in doc["frames"]], [0, 1, 2, 3], atol=1e-6)
    np.testing.assert_allclose([f["lat"] for f in doc["frames"]], np.interp([0, 1, 2, 3], times, lats))
    raw = [np.array(f["raw_scores"]) for f in doc["frames"]]
    refined = [np.array(f["scores"]) for f in doc["frames"]]
    assert all(len(r) > 0 for r in raw)
    assert any(not np.allclose(r, s) for r, s in zip(raw, refined))
    for t, s in enumerate(refined):  # a refined score is a mean with a score of an adjacent frame
        u = t + 1 if t + 1 < len(raw) else t - 1
        lo, hi = min(raw[t].min(), raw[u].min()), max(raw[t].max(), raw[u].max())
        assert ((s >= lo - 1e-6) & (s <= hi + 1e-6)).all()

    points = gpd.read_file(tmp_path / "out" / "damage_points.gpkg", layer="detections")
    assert len(points) == sum(len(r) for r in raw) and points.crs.to_epsg() == 4326
    np.testing.assert_allclose(sorted(points["score"]), sorted(np.concatenate(refined)), atol=1e-6)
    frame_lat = {f["frame"]: f["lat"] for f in doc["frames"]}
    np.testing.assert_allclose(points.geometry.y, points["frame"].map(frame_lat))
    with Image.open(tmp_path / "out" / "heatmap.png") as png:
        assert png.format == "PNG" and png.size[0] > 100


def test_flight_errors(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"definitely not a video" * 100)
    (tmp_path / "late.csv").write_text("time,lat,lon\n100,10,20\n200,12,24\n")
    video = write_mp4(tmp_path / "v.mp4", [np.zeros((32, 32, 3), np.uint8)] * 4, fps=2)
    recipe = tiny_recipe()
    save_video_model(build_msnet(recipe), recipe, tmp_path / "model")
    runner = CliRunner()
    bad = runner.invoke(
        app, ["video", "predict", str(tmp_path / "model"), str(tmp_path / "bad.mp4"), "--out", str(tmp_path / "o")]
    )
    assert bad.exit_code == 3 and "bad.mp4: cannot" in bad.output
    late = runner.invoke(
        app,
        [
            "video",
            "predict",
            str(tmp_path / "model"),
            str(video),
            "--out",
            str(tmp_path / "o"),
            "--gps",
            str(tmp_path / "late.csv"),
        ],
    )
    assert late.exit_code == 3 and "late.csv: track covers" in late.output and "no overlap" in late.output
    assert not (tmp_path / "o").exists()  # nothing written
