"""`--runtime onnx`: the mapper's model in ONNX Runtime gives torch's probabilities (to ~1e-6)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from damagemap.artifact import save_model
from damagemap.data.synthetic import synthetic_tiles
from damagemap.errors import ConfigError
from damagemap.onnx_runtime import check_runtime
from damagemap.recipe import Recipe
from damagemap.tile_predictor import ModelTilePredictor
from damagemap.training.pipeline import train_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime (damagemap[onnx], in the dev extra) missing"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    recipe = Recipe.model_validate(
        {
            "name": "onnx",
            "encoder": {"name": "efficientnet-lite0"},
            "classes": ["background", "minor", "major"],
            "damage_classes": [1, 2],
            "input": {"size": 64, "mode": "resize"},
            "head": {"kind": "fpn", "options": {"fpn_channels": 8, "embed_channels": 8}},
            "objectives": {"ce": {"weight": 1.0}},
            "train": {"epochs": 1, "batch_size": 4, "augment": []},
        }
    )
    samples = synthetic_tiles("north", 4, size=64, seed=0)
    for s in samples:  # three classes: split the damage into two
        s.mask = np.where((s.mask == 1) & (np.arange(64)[None, :] < 32), 2, s.mask).astype(s.mask.dtype)
    model, _ = train_model(recipe, samples, cache_dir=None)
    return save_model(model, tmp_path_factory.mktemp("m") / "model")


@pytest.mark.parametrize("tta", [None, "flip"])
@pytest.mark.parametrize("batch", [3, 1])
def test_probabilities_and_features_match_torch(model_dir, tta, batch) -> None:
    tiles = np.random.default_rng(1).random((batch, 3, 64, 64), dtype=np.float32)
    torch_p = ModelTilePredictor(model_dir, tta=tta)
    onnx_p = ModelTilePredictor(model_dir, tta=tta, runtime="onnx")
    want, want_pooled = torch_p.predict(tiles)
    got, got_pooled = onnx_p.predict(tiles)
    assert got is not None and want is not None and got.shape == want.shape == (batch, 3, 64, 64)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got_pooled, want_pooled, rtol=1e-4, atol=1e-4)  # deep features of magnitude ~5
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.999
    assert onnx_p._onnx is not None and torch_p._onnx is None  # the session did the work
    # batch sizes other than the export's come through (dynamic batch axis)
    assert onnx_p(tiles[:1]).shape == (1, 3, 64, 64)


def test_runtime_is_part_of_the_fingerprint_and_survives_pickling(model_dir) -> None:
    import pickle

    onnx_p = ModelTilePredictor(model_dir, runtime="onnx")
    assert onnx_p.fingerprint != ModelTilePredictor(model_dir).fingerprint
    clone = pickle.loads(pickle.dumps(onnx_p))
    assert clone.runtime == "onnx" and clone.fingerprint == onnx_p.fingerprint


def test_bad_runtimes_are_clear_errors(model_dir, monkeypatch) -> None:
    with pytest.raises(ConfigError, match="expected one of torch, onnx"):
        check_runtime("tensorrt")
    with pytest.raises(ConfigError, match="fp32 on the CPU"):
        ModelTilePredictor(model_dir, runtime="onnx", precision="bf16")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'damagemap\[onnx\]'"):
        ModelTilePredictor(model_dir, runtime="onnx")
    assert torch.get_num_threads() >= 1
