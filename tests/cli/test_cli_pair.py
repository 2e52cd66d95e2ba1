"""Pair (pre/post) models through the CLI: train on a scene with --pre, then suggest and map with --pre."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
from shapely.geometry import box
from typer.testing import CliRunner

from damagemap.cli import app
from tests.mapping.conftest import ORIGIN, PIXEL, pattern, write_scene
from tests.mapping.test_mapping_pre import warped_copy

runner = CliRunner()

RECIPE = """
name: pair_tiny
encoder: {name: efficientnet-lite0}
input: {size: 64, mode: tile, pair: %s}
head: {kind: fpn, options: {fpn_channels: 8, embed_channels: 8}}
train: {epochs: 1, batch_size: 4}
"""
COMMON = ["--replicate-single-band", "--no-cache"]


@pytest.fixture(scope="module")
def event(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pair")
    pre = write_scene(root / "pre_src.tif", nodata_box=None)
    post_data = pattern(200, 300)[None].copy()
    post_data[:, 60:100, 80:140] = 250  # a new bright patch: the change
    post = write_scene(root / "post.tif", data=post_data, nodata_box=None)
    pre = warped_copy(pre, root / "pre.tif", "EPSG:3857", 0.6)  # another provider's grid
    x0, y0 = ORIGIN
    cell = lambda c0, r0, c1, r1: box(x0 + c0 * PIXEL, y0 - r1 * PIXEL, x0 + c1 * PIXEL, y0 - r0 * PIXEL)  # noqa: E731
    labels = gpd.GeoDataFrame(
        {"damage": ["background", "damaged"]}, geometry=[cell(0, 0, 200, 200), cell(80, 60, 140, 100)], crs="EPSG:32616"
    )
    labels.to_file(root / "labels.gpkg")
    for pair in (True, False):
        (root / f"{'pair' if pair else 'post'}.yaml").write_text(RECIPE % str(pair).lower())
    return {"root": root, "pre": pre, "post": post, "labels": root / "labels.gpkg"}


def _train(event, recipe: str, out: str, *extra: str):
    r = event
    args = ["train", str(r["root"] / recipe), "--scene", str(r["post"]), "--labels", str(r["labels"])]
    return runner.invoke(app, [*args, "--out", str(r["root"] / out), *COMMON, *extra])


def test_train_suggest_and_map_with_a_pre_event_scene(event) -> None:
    r, root = event, event["root"]
    result = _train(event, "pair.yaml", "model", "--pre", str(r["pre"]))
    assert result.exit_code == 0, result.output
    manifest = json.loads((root / "model" / "manifest.json").read_text())
    assert manifest["head"]["kind"] == "pair" and manifest["recipe"]["input"]["pair"] is True

    args = ["suggest", str(root / "model"), str(r["post"]), "--pre", str(r["pre"]), "--n", "2", "--tile", "64"]
    result = runner.invoke(app, [*args, "--out", str(root / "next.gpkg"), "--replicate-single-band"])
    assert result.exit_code == 0, result.output
    assert len(gpd.read_file(root / "next.gpkg")) == 2

    out = root / "map"
    args = ["map", str(root / "model"), str(r["post"]), "--pre", str(r["pre"]), "--out", str(out)]
    result = runner.invoke(app, [*args, "--tile", "64", "--overlap", "16", "--grid-m", "0", "--replicate-single-band"])
    assert result.exit_code == 0, result.output
    with rasterio.open(out / "damage_probability.tif") as src:
        assert src.crs.to_epsg() == 32616 and (src.width, src.height) == (300, 200)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"]["pre_scene"] == str(r["pre"])


def test_pre_and_model_mismatches_are_configuration_errors(event) -> None:
    r, root = event, event["root"]
    result = _train(event, "pair.yaml", "nope")
    assert result.exit_code == 4 and "give --pre for every --scene" in result.output
    result = _train(event, "post.yaml", "nope", "--pre", str(r["pre"]))
    assert result.exit_code == 4 and "takes post-event images only" in result.output
    assert not (root / "nope").exists()

    assert _train(event, "post.yaml", "post_model").exit_code == 0
    args = ["map", str(root / "post_model"), str(r["post"]), "--out", str(root / "m1"), "--replicate-single-band"]
    result = runner.invoke(app, [*args, "--pre", str(r["pre"])])
    assert result.exit_code == 4 and "takes the post-event scene only" in " ".join(result.output.split())
    if (root / "model").exists():  # the pair model of the first test
        args = ["map", str(root / "model"), str(r["post"]), "--out", str(root / "m2"), "--replicate-single-band"]
        result = runner.invoke(app, args)
        assert result.exit_code == 4 and "give the pre-event scene (--pre)" in " ".join(result.output.split())
    assert not (root / "m1").exists() and not (root / "m2").exists()
