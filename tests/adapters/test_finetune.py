"""The ``finetune`` adapter kind: every encoder weight trainable, saved and re-applied like the others."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from damagemap.adapters import adapter_record, adapter_tensors, apply_saved_adapter, attach_adapter
from damagemap.adapters.recipe import recipe_adapters
from damagemap.encoders import build_encoder
from damagemap.errors import ConfigError
from damagemap.recipe import Recipe
from damagemap.types import Sample

TINY_SEGFORMER = dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 2])
TINY_VIT = dict(embed_dim=32, depth=2, num_heads=2, img_size=56)


def _segformer(**overrides):
    torch.manual_seed(0)
    return build_encoder("segformer-mit-b0", pretrained=False, **(TINY_SEGFORMER | overrides))


def _x(size: int = 64, bands: int = 3) -> torch.Tensor:
    return torch.rand(2, bands, size, size, generator=torch.Generator().manual_seed(1))


def _perturb(enc, seed: int = 3) -> None:
    """Stand-in for training: move every trainable weight."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in enc.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    enc.invalidate_fingerprint()


def test_finetune_claims_every_encoder_parameter_and_gradients_reach_them() -> None:
    enc = _segformer()
    names = [n for n, _ in enc.named_parameters()]
    assert not any(p.requires_grad for p in enc.parameters())  # built frozen
    base_fp = enc.fingerprint
    attach_adapter(enc, "finetune", {})
    assert all(p.requires_grad for p in enc.parameters())
    assert enc.adapter_specs == [{"kind": "finetune"}] and enc.adapter_keys == sorted(names)
    assert enc.base_fingerprint == base_fp and enc.fingerprint == base_fp  # weights untouched so far
    sum(f.square().mean() for f in enc(_x())).backward()
    no_grad = [n for n, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_saved_tensors_reapply_exactly_on_a_rebuilt_base_encoder() -> None:
    enc = attach_adapter(_segformer(), "finetune", {})
    _perturb(enc)
    enc.freeze()
    tensors, config = adapter_tensors(enc), adapter_record(enc)
    assert set(tensors) == set(enc.state_dict())  # MiT: every state entry is a parameter
    assert config["modules"] == [{"kind": "finetune"}] and config["keys"] == sorted(tensors)
    base = _segformer()
    assert config["base_fingerprint"] == base.fingerprint != config["adapted_fingerprint"]
    restored = apply_saved_adapter(base, tensors, config)
    assert restored.fingerprint == enc.fingerprint and not any(p.requires_grad for p in restored.parameters())
    x = _x()
    with torch.no_grad():
        for a, b in zip(enc(x), restored(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_fine_tuning_keeps_the_encoder_in_eval_mode_so_drop_path_is_off() -> None:
    enc = attach_adapter(_segformer(drop_path_rate=0.5), "finetune", {})
    enc.train()  # what a training loop would call
    assert not any(m.training for m in enc.modules())
    x = _x()
    first, second = enc(x), enc(x)  # stochastic depth at rate 0.5 would make these differ
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert first[-1].requires_grad  # yet the weights get gradients


def test_finetune_after_the_band_adapter_trains_its_frozen_rgb_conv_too() -> None:
    enc = build_encoder("efficientnet-lite0")
    attach_adapter(enc, "band_adapter", {"in_chans": 5, "rgb": [0, 1, 2], "init": "zeros"})
    assert not enc.get_submodule("body.conv_stem.rgb_conv").weight.requires_grad
    attach_adapter(enc, "finetune", {})
    assert enc.get_submodule("body.conv_stem.rgb_conv").weight.requires_grad
    assert set(enc.adapter_keys) == {n for n, _ in enc.named_parameters()}
    _perturb(enc)
    enc.freeze()
    tensors, config = adapter_tensors(enc), adapter_record(enc)
    restored = apply_saved_adapter(build_encoder("efficientnet-lite0"), tensors, config)
    assert restored.fingerprint == enc.fingerprint  # BatchNorm buffers never moved: parameters suffice
    with torch.no_grad():
        torch.testing.assert_close(enc(_x(32, 5))[-1], restored(_x(32, 5))[-1], rtol=0, atol=0)


def test_a_later_kind_that_wraps_fine_tuned_layers_keeps_them_recorded() -> None:
    # LoRA after finetune (few-shot adaptation of a fine-tuned ViT) moves qkv.weight to
    # qkv.base_layer.weight; the registry follows the parameter, so saving and re-applying work
    torch.manual_seed(0)
    enc = attach_adapter(build_encoder("dinov2-vits14", pretrained=False, **TINY_VIT), "finetune", {})
    _perturb(enc)
    attach_adapter(enc, "lora", {"r": 2, "alpha": 4, "target_modules": ["qkv"]})
    names = {n for n, _ in enc.named_parameters()}
    assert set(enc.adapter_keys) == names and "model.blocks.0.attn.qkv.base_layer.weight" in names
    assert "model.blocks.0.attn.qkv.weight" not in names
    with torch.no_grad():  # LoRA B starts at 0: make it matter
        enc.get_submodule("model.blocks.0.attn.qkv").lora_B["default"].weight.fill_(0.1)
    enc.freeze()
    tensors, config = adapter_tensors(enc), adapter_record(enc)
    torch.manual_seed(0)
    restored = apply_saved_adapter(build_encoder("dinov2-vits14", pretrained=False, **TINY_VIT), tensors, config)
    assert restored.fingerprint == enc.fingerprint


def test_recipe_switch_attaches_finetune_last_and_is_off_by_default() -> None:
    enc = build_encoder("efficientnet-lite0")
    sample = Sample(np.zeros((5, 8, 8), np.float32), None, "d", "s")
    assert Recipe(name="t").encoder.finetune is False
    assert recipe_adapters(enc, Recipe(name="t"), [sample]) == [
        ("band_adapter", {"in_chans": 5, "rgb": [0, 1, 2], "init": "zeros"})
    ]
    recipe = Recipe.model_validate({"name": "t", "encoder": {"finetune": True}})
    assert [kind for kind, _ in recipe_adapters(enc, recipe, [sample])] == ["band_adapter", "finetune"]


def test_finetune_takes_no_options() -> None:
    with pytest.raises(ConfigError, match="takes no options"):
        attach_adapter(_segformer(), "finetune", {"lr": 1e-5})
