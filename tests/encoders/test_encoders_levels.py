"""encoder.levels: which CNN feature maps the encoder returns (and the head decodes)."""

import pytest
import torch

from damagemap.config import validate
from damagemap.encoders import build_encoder, encoder_options
from damagemap.errors import ConfigError
from damagemap.recipe import Recipe
from damagemap.training.pipeline import build_recipe_head, encoder_for


def test_levels_pick_the_maps_by_stride_with_the_same_weights() -> None:
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    default = build_encoder("efficientnet-lite0")
    fine = build_encoder("efficientnet-lite0", levels=[1, 2, 3, 4, 5])
    assert default.strides == (4, 8, 16, 32) and fine.strides == (2, 4, 8, 16, 32)
    maps, fine_maps = default(x), fine(x)
    assert fine_maps[0].shape[-2:] == (32, 32)  # stride 2
    for a, b in zip(maps, fine_maps[1:]):  # strides 4..32 are the default encoder's maps
        torch.testing.assert_close(a, b)
    coarse = build_encoder("efficientnet-lite0", levels=[2, 3])
    assert coarse.strides == (4, 8) and coarse.fingerprint != default.fingerprint  # its own feature cache


def test_bad_levels_and_fixed_encoders_are_refused() -> None:
    with pytest.raises(ConfigError, match="levels"):
        build_encoder("efficientnet-lite0", levels=[0, 2])
    with pytest.raises(ConfigError, match="fixed feature maps"):
        encoder_options("dinov2-vits14", {}, [2, 3])
    assert encoder_options("dinov2-vits14", {"a": 1}, None) == {"a": 1}
    with pytest.raises(ConfigError, match="levels"):
        validate(Recipe, {"name": "r", "encoder": {"levels": [3, 2]}}, "r.yaml")


def test_recipe_levels_reach_encoder_and_head() -> None:
    recipe = Recipe.model_validate({"name": "r", "encoder": {"levels": [1, 2, 3, 4, 5]}, "input": {"size": 64}})
    enc = encoder_for(recipe)
    assert enc.strides == (2, 4, 8, 16, 32)
    head = build_recipe_head(recipe, tuple(enc.channels), {"fpn_channels": 8, "embed_channels": 8})
    assert head.in_channels == (16, 24, 40, 112, 320)
    x = torch.rand(1, 3, 64, 64)
    assert head(enc(x), (64, 64)).shape == (1, 1, 64, 64)


def test_saved_model_rebuilds_its_levels(tmp_path) -> None:
    from damagemap.artifact import load_model, save_model
    from damagemap.model import DamageModel

    recipe = Recipe.model_validate({"name": "r", "encoder": {"levels": [1, 2, 3, 4, 5]}, "input": {"size": 64}})
    enc = encoder_for(recipe)
    head = build_recipe_head(recipe, tuple(enc.channels), {"fpn_channels": 8, "embed_channels": 8}).eval()
    model = DamageModel(recipe, enc, head)
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert loaded.encoder.strides == (2, 4, 8, 16, 32)
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(loaded.logits(x), model.logits(x))
