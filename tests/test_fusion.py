"""BatchNorm folding for inference: same outputs, no BatchNorm left, trained BatchNorm untouched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from damagemap.artifact import save_model
from damagemap.data.synthetic import synthetic_tiles
from damagemap.encoders import build_encoder
from damagemap.fusion import fold_batchnorm, prepare_for_inference
from damagemap.heads import build_head
from damagemap.recipe import Recipe
from damagemap.tile_predictor import ModelTilePredictor
from damagemap.training.pipeline import train_model


def _batchnorms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


def _randomise_statistics(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine terms, so a wrong fold cannot hide behind identity BNs."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


@pytest.mark.parametrize("name", ["efficientnet-lite0", "resnet18"])
def test_folded_encoder_gives_the_same_features(name: str) -> None:
    encoder = build_encoder(name, pretrained=False).eval()
    _randomise_statistics(encoder)
    folded = copy.deepcopy(encoder)
    count = prepare_for_inference(folded)
    assert count > 0 and _batchnorms(folded) == 0
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want, got = encoder(x), folded(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(want, got, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_timm_activation_survives_the_fold() -> None:
    """EfficientNet's BatchNormAct2d carries ReLU6: dropping it with the BN would change the features."""
    encoder = build_encoder("efficientnet-lite0", pretrained=False).eval()
    prepare_for_inference(encoder)
    assert any(isinstance(m, nn.ReLU6) for m in encoder.modules())


def test_fpn_head_folds_and_agrees() -> None:
    head = build_head("fpn", (16, 24, 40), 2, fpn_channels=8, embed_channels=8).eval()
    _randomise_statistics(head, seed=2)
    folded = copy.deepcopy(head)
    assert prepare_for_inference(folded) > 0 and _batchnorms(folded) == 0
    g = torch.Generator().manual_seed(3)
    maps = [torch.rand(1, c, s, s, generator=g) for c, s in ((16, 16), (24, 8), (40, 4))]
    with torch.inference_mode():
        torch.testing.assert_close(folded(maps, (64, 64)), head(maps, (64, 64)), rtol=1e-4, atol=1e-4)


def test_training_mode_batchnorm_is_not_folded() -> None:
    block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    assert fold_batchnorm(block) == 0
    assert isinstance(block[1], nn.BatchNorm2d)


def test_batchnorm_not_fed_by_the_conv_before_it_is_left_alone() -> None:
    block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(8)).eval()
    assert fold_batchnorm(block) == 0


def test_predictor_uses_the_folded_model_with_unchanged_probabilities(tmp_path) -> None:
    recipe = Recipe.model_validate(
        {
            "name": "fold",
            "encoder": {"name": "efficientnet-lite0"},
            "input": {"size": 64, "mode": "resize"},
            "head": {"kind": "fpn", "options": {"fpn_channels": 8, "embed_channels": 8}},
            "train": {"epochs": 1, "batch_size": 4, "augment": []},
        }
    )
    model, _ = train_model(recipe, synthetic_tiles("north", 4, size=64, seed=0), cache_dir=None)
    out = save_model(model, tmp_path / "m")
    tiles = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    with torch.inference_mode():
        x = torch.from_numpy(tiles)
        want = model.probabilities(model.head(model.encoder(x), (64, 64))).numpy()
    predictor = ModelTilePredictor(out)
    assert _batchnorms(predictor.model.encoder) == 0 and _batchnorms(predictor.model.head) == 0
    np.testing.assert_allclose(predictor(tiles), want, atol=1e-4)
