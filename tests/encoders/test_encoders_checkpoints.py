"""Checkpoint reading and the errors for missing / corrupt / mismatching files."""

from __future__ import annotations

import hashlib
import os

import pytest
import timm
import torch
from safetensors.torch import save_file

from damagemap.encoders import build_encoder
from damagemap.encoders import checkpoints as ckpt
from damagemap.errors import CheckpointError

TINY16 = dict(embed_dim=32, depth=2, num_heads=2, img_size=64)


def _tiny_dinov3_official(seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny DINOv3 state dict in the official layout (no qkv bias, 4 storage tokens)."""
    model = timm.create_model("vit_small_patch16_dinov3", num_classes=0, **TINY16)
    out = {"mask_token": torch.zeros(1, 32)}
    for k, v in model.state_dict().items():
        k = k.replace("reg_token", "storage_tokens").replace("gamma_1", "ls1.gamma")
        out[k.replace("gamma_2", "ls2.gamma")] = v
    return out


# -- load_state_dict ---------------------------------------------------------------------------
@pytest.mark.parametrize("wrap", ["plain", "model", "state_dict", "module_prefix", "nested"])
def test_load_state_dict_unwraps_containers(tmp_path, wrap):
    state = {"a.weight": torch.randn(2, 3), "b": torch.arange(4)}
    obj = {
        "plain": state,
        "model": {"model": state, "epoch": 3},
        "state_dict": {"state_dict": state, "optimizer": {"lr": 0.1}},
        "module_prefix": {"module." + k: v for k, v in state.items()},
        "nested": {"checkpoint": 1, "model": {"state_dict": state}},
    }[wrap]
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    loaded = ckpt.load_state_dict(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_load_state_dict_safetensors_and_sha256(tmp_path):
    state = {"w": torch.randn(3, 3)}
    path = tmp_path / "model.safetensors"
    save_file(state, path)
    assert torch.equal(ckpt.load_state_dict(path)["w"], state["w"])
    assert ckpt.sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match="nope.pth: checkpoint file not found"):
        ckpt.load_state_dict(path)
    with pytest.raises(CheckpointError, match="nope.pth"):
        build_encoder("dinov2-vits14", checkpoint=path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".bin"])
def test_corrupt_file(tmp_path, suffix):
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError) as err:
        build_encoder("dinov3-vits16", checkpoint=path, **TINY16)
    assert str(path) in str(err.value) and "cannot read" in str(err.value)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a module, not a state dict
    with pytest.raises(CheckpointError, match="evil.pth: not a plain tensor checkpoint"):
        ckpt.load_state_dict(path)


def test_file_without_tensors(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, path)
    with pytest.raises(CheckpointError, match="no state dict"):
        ckpt.load_state_dict(path)


# -- mismatching checkpoints -----------------------------------------------------------------------
def test_missing_keys_are_listed(tmp_path):
    state = _tiny_dinov3_official()
    del state["blocks.1.mlp.fc2.weight"], state["norm.bias"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        build_encoder("dinov3-vits16", checkpoint=path, **TINY16)
    msg = str(err.value)
    assert msg.startswith(str(path))
    assert "missing keys (2): blocks.1.mlp.fc2.weight, norm.bias" in msg
    assert err.value.missing == ["blocks.1.mlp.fc2.weight", "norm.bias"]


def test_wrong_shapes_are_listed(tmp_path):
    path = tmp_path / "small.pth"
    torch.save(_tiny_dinov3_official(), path)
    with pytest.raises(CheckpointError) as err:  # a 48-wide model for a 32-wide checkpoint
        build_encoder("dinov3-vits16", checkpoint=path, embed_dim=48, depth=2, num_heads=2)
    msg = str(err.value)
    assert str(path) in msg and "shape mismatches" in msg
    assert "cls_token: checkpoint (1, 1, 32) vs model (1, 1, 48)" in msg


def test_unexpected_keys_are_listed(tmp_path):
    state = _tiny_dinov3_official()
    state["blocks.2.norm1.weight"] = torch.ones(32)  # a third block the model does not have
    path = tmp_path / "deeper.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): blocks\.2\.norm1\.weight"):
        build_encoder("dinov3-vits16", checkpoint=path, **TINY16)


def test_wrong_family_checkpoint(tmp_path):
    path = tmp_path / "dinov3.pth"
    torch.save(_tiny_dinov3_official(), path)
    with pytest.raises(CheckpointError, match="dinov3.pth"):
        build_encoder("dinov2-vits14", checkpoint=path, embed_dim=32, depth=2, num_heads=2)


@pytest.mark.parametrize("name", ["dinov3-vits16", "dinov2-vitb14", "sam-vitb", "resnet18"])
def test_hub_unreachable_asks_for_a_checkpoint(monkeypatch, name):
    monkeypatch.setattr(ckpt, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(CheckpointError, match="unreachable.*checkpoint=PATH"):
        build_encoder(name, depth=1) if name != "resnet18" else build_encoder(name)
