"""Device and precision plumbing, on the CPU (no GPU here; see damagemap.device)."""

from __future__ import annotations

import pytest
import torch

from damagemap.data.synthetic import synthetic_tiles
from damagemap.device import autocast, check_precision, resolve_device
from damagemap.errors import ConfigError
from damagemap.recipe import Recipe
from damagemap.training.pipeline import evaluate_model, train_model


def test_auto_is_cuda_when_torch_sees_a_gpu_else_cpu(monkeypatch):
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device(None) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="there are 2 CUDA device"):
        resolve_device("cuda:2")


def test_unusable_devices_and_precisions_are_clear_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(" CPU ") == torch.device("cpu")
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="MPS backend is not available"):
        resolve_device("mps")
    with pytest.raises(ConfigError, match="expected auto"):
        resolve_device("tpu")
    assert check_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        check_precision("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="expected one of fp32, bf16, fp16"):
        check_precision("int8", torch.device("cpu"))


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch, caplog, native):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    with caplog.at_level("WARNING", logger="damagemap.device"):
        assert check_precision("bf16", torch.device("cpu")) == "bf16"
        assert check_precision("fp32", torch.device("cpu")) == "fp32"
    warned = [r.getMessage() for r in caplog.records if "no native bf16" in r.getMessage()]
    assert len(warned) == (0 if native else 1)


def test_bf16_autocast_is_applied_and_fp32_is_not():
    lin = torch.nn.Linear(4, 4)
    x = torch.rand(2, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert lin(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert lin(x).dtype == torch.float32


def test_training_and_evaluation_on_an_explicit_device_match_the_default():
    recipe = Recipe.model_validate(
        {
            "name": "d",
            "encoder": {"pretrained": False},
            "input": {"size": 64},
            "head": {"options": {"fpn_channels": 8, "embed_channels": 8}},
            "train": {"epochs": 1, "batch_size": 4},
        }
    )
    samples = synthetic_tiles("a", 6, size=64, seed=0)
    default, _ = train_model(recipe, samples, cache_dir=None)
    explicit, _ = train_model(
        recipe, samples, cache_dir=None, device="auto" if not torch.cuda.is_available() else "cpu"
    )
    assert explicit.device == torch.device("cpu")
    for a, b in zip(default.head.state_dict().values(), explicit.head.state_dict().values()):
        torch.testing.assert_close(a, b)
    scores = evaluate_model(explicit, samples, None, precision="bf16")  # bf16 autocast runs on the CPU
    assert 0 <= scores["all"]["miou"] <= 1
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        train_model(recipe, samples, cache_dir=None, device="cpu", precision="fp16")
