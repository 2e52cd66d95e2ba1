"""A scene mapped with `--runtime onnx` gives the class map of the torch runtime."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import rasterio

from damagemap.artifact import save_model
from damagemap.data.synthetic import synthetic_tiles
from damagemap.mapping import MapOptions, map_scene
from damagemap.recipe import Recipe
from damagemap.tile_predictor import ModelTilePredictor
from damagemap.training.pipeline import train_model
from tests.mapping.conftest import write_scene

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime (damagemap[onnx], in the dev extra) missing"
)


def test_onnx_runtime_maps_the_same_classes(tmp_path) -> None:
    recipe = Recipe.model_validate(
        {
            "name": "onnx-map",
            "encoder": {"name": "efficientnet-lite0"},
            "input": {"size": 64, "mode": "tile"},
            "head": {"kind": "fpn", "options": {"fpn_channels": 8, "embed_channels": 8}},
            "train": {"epochs": 2, "batch_size": 4, "augment": []},
        }
    )
    model, _ = train_model(recipe, synthetic_tiles("north", 6, size=64, seed=2), cache_dir=None)
    model_dir = save_model(model, tmp_path / "model")
    scene = write_scene(tmp_path / "scene.tif", count=3)
    options = MapOptions(tile=64, overlap=8, block=64, batch=3, grid_m=None, vectorize=False)
    outs = {}
    for runtime in ("torch", "onnx"):
        result = map_scene(ModelTilePredictor(model_dir, runtime=runtime), scene, tmp_path / runtime, options)
        assert result.stats["tiles_predicted"] > 0
        with (
            rasterio.open(tmp_path / runtime / "damage_class.tif") as c,
            rasterio.open(tmp_path / runtime / "damage_probability.tif") as p,
        ):
            outs[runtime] = c.read(1), p.read(1).astype(int)
    (ct, pt), (co, po) = outs["torch"], outs["onnx"]
    assert (ct == co).mean() > 0.999
    assert np.abs(pt - po).max() <= 1  # probabilities agree to one quantisation level
    assert len(np.unique(pt)) > 10  # a real probability map, not a constant
