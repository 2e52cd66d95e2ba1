"""Patch-embedding adaptation to >3 bands: RGB weights kept, only the extra conv trains."""

from __future__ import annotations

import pytest
import torch

from damagemap.adapters import adapter_record, adapter_tensors, apply_saved_adapter, attach_adapter
from damagemap.adapters.band import BandAdaptedConv, adapt_bands
from damagemap.encoders import build_encoder
from damagemap.errors import CheckpointError, ConfigError

TINY_VIT = dict(embed_dim=32, depth=2, num_heads=2, img_size=56)
RGB = [3, 2, 1]


def _base(name: str):
    if name == "efficientnet-lite0":
        return build_encoder(name).freeze(), 32, "body.conv_stem"
    torch.manual_seed(0)
    return build_encoder("dinov2-vits14", pretrained=False, **TINY_VIT).freeze(), 28, "model.patch_embed.proj"


def _x(size: int, bands: int = 14) -> torch.Tensor:
    return torch.rand(2, bands, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["dinov2-vits14", "efficientnet-lite0"])
def test_zero_extra_conv_reproduces_the_rgb_encoder(name: str) -> None:
    enc, size, path = _base(name)
    x = _x(size)
    with torch.no_grad():
        before = enc(x[:, RGB])
    rgb_weight = enc.get_submodule(path).weight.clone()
    fp = enc.fingerprint
    adapt_bands(enc, 14, RGB)
    conv = enc.get_submodule(path)
    assert isinstance(conv, BandAdaptedConv) and conv.extra == [0, *range(4, 14)]
    assert torch.equal(conv.rgb_conv.weight, rgb_weight) and conv.extra_conv.bias is None
    assert enc.in_chans == 14 and enc.fingerprint != fp
    with torch.no_grad():
        after = enc(x)
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # and the extra bands do nothing yet
        other = enc(torch.cat([x[:, :3] * 0, x[:, 3:]], 1).index_copy(1, torch.tensor(RGB), x[:, RGB]))
    for a, b in zip(after, other):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["dinov2-vits14", "efficientnet-lite0"])
def test_gradients_reach_only_the_extra_conv(name: str) -> None:
    enc, size, path = _base(name)
    adapt_bands(enc, 14, RGB)
    trainable = [n for n, p in enc.named_parameters() if p.requires_grad]
    assert trainable == [f"{path}.extra_conv.weight"]
    sum(f.square().mean() for f in enc(_x(size))).backward()
    grads = {n: p.grad for n, p in enc.named_parameters() if p.grad is not None}
    assert list(grads) == trainable and grads[trainable[0]].abs().sum() > 0


def test_stats_are_extended_at_the_rgb_positions() -> None:
    enc, _, _ = _base("dinov2-vits14")
    mean, std = enc.mean, enc.std
    adapt_bands(enc, 5, [4, 0, 2])
    assert enc.mean[4] == mean[0] and enc.mean[0] == mean[1] and enc.mean[2] == mean[2]
    assert enc.mean[1] == enc.mean[3] == pytest.approx(sum(mean) / 3)
    assert enc.std[4] == std[0] and enc._mean.shape == (1, 5, 1, 1)


def test_band_order_is_part_of_the_fingerprint() -> None:
    a, _, _ = _base("efficientnet-lite0")
    b, _, _ = _base("efficientnet-lite0")
    assert a.fingerprint == b.fingerprint
    assert adapt_bands(a, 14, [3, 2, 1]).fingerprint != adapt_bands(b, 14, [0, 1, 2]).fingerprint


def test_rgb_mean_init_is_small_and_changes_the_output() -> None:
    enc, size, path = _base("dinov2-vits14")
    w = enc.get_submodule(path).weight.detach().clone()
    adapt_bands(enc, 6, [0, 1, 2], init="rgb_mean", scale=0.1)
    extra = enc.get_submodule(path).extra_conv.weight
    assert extra.shape == (w.shape[0], 3, *w.shape[2:])
    torch.testing.assert_close(extra[:, 1], w.mean(1) * 0.1)


def _adapted(name: str):
    enc, size, path = _base(name)
    attach_adapter(enc, "band_adapter", {"in_chans": 14, "rgb": RGB, "init": "zeros"})
    return enc, size, path


def test_state_round_trip_restores_weights_and_fingerprint() -> None:
    enc, size, path = _adapted("efficientnet-lite0")
    with torch.no_grad():
        enc.get_submodule(path).extra_conv.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(3))
    enc.invalidate_fingerprint()
    config, tensors = adapter_record(enc), adapter_tensors(enc)
    assert f"{path}.extra_conv.weight" in tensors
    assert config["modules"] == [{"kind": "band_adapter", "in_chans": 14, "rgb": RGB, "init": "zeros"}]
    fresh, _, _ = _base("efficientnet-lite0")
    restored = apply_saved_adapter(fresh, tensors, config)
    assert restored.fingerprint == enc.fingerprint
    assert not any(p.requires_grad for p in restored.parameters())
    x = _x(size)
    with torch.no_grad():
        for a, b in zip(enc(x), restored(x)):
            torch.testing.assert_close(a, b)


def test_restore_refuses_wrong_shape_or_base_encoder() -> None:
    enc, _, path = _adapted("efficientnet-lite0")
    config, tensors = adapter_record(enc), adapter_tensors(enc)
    key = f"{path}.extra_conv.weight"
    with pytest.raises(CheckpointError, match=r"do not fit the encoder"):
        apply_saved_adapter(_base("efficientnet-lite0")[0], {**tensors, key: tensors[key][:, :5]}, config)
    with pytest.raises(CheckpointError, match="made for encoder fingerprint"):
        apply_saved_adapter(_base("dinov2-vits14")[0], tensors, config)


def test_bad_arguments_are_config_errors() -> None:
    enc, _, _ = _base("dinov2-vits14")
    with pytest.raises(ConfigError, match=r"3 distinct band indices in 0..13, got \[3, 2, 14\]"):
        adapt_bands(enc, 14, [3, 2, 14])
    with pytest.raises(ConfigError, match="more than 3 bands"):
        adapt_bands(enc, 3, [0, 1, 2])


def test_recipe_wiring_positions_and_copy() -> None:
    import numpy as np

    from damagemap.adapters.recipe import attach_recipe_adapters, rgb_positions
    from damagemap.recipe import InputConfig, Recipe
    from damagemap.types import Sample

    def attach_band_adapter(enc, cfg, samples, copy_first=False):
        return attach_recipe_adapters(enc, Recipe(name="t", input=cfg), samples, copy_first)

    assert rgb_positions(InputConfig(bands=[0, 3, 2, 1, 11], rgb=[3, 2, 1])) == [1, 2, 3]
    assert rgb_positions(InputConfig(rgb=[3, 2, 1])) == [3, 2, 1]  # all bands: indices are positions
    assert rgb_positions(InputConfig(bands=[0, 4, 5, 6])) == [0, 1, 2]
    with pytest.raises(ConfigError, match=r"band\(s\) \[1\] are not among input.bands"):
        rgb_positions(InputConfig(bands=[3, 2, 0, 4], rgb=[3, 2, 1]))
    enc, _, _ = _base("dinov2-vits14")
    fp = enc.fingerprint
    sample = Sample(np.zeros((14, 8, 8), np.float32), None, "d", "s")
    assert attach_band_adapter(enc, InputConfig(bands=[3, 2, 1]), [sample]) is enc  # 3 bands: unchanged
    adapted = attach_band_adapter(enc, InputConfig(rgb=[3, 2, 1]), [sample], copy_first=True)
    assert adapted is not enc and adapted.in_chans == 14 and enc.in_chans == 3 and enc.fingerprint == fp
    assert adapted.adapter_specs == [{"kind": "band_adapter", "in_chans": 14, "rgb": [3, 2, 1], "init": "zeros"}]
