"""ViT encoders: tiny random models written in each official key layout and loaded back.

Each round trip builds a tiny timm model with random weights, writes them in an official layout
(the converse of the loader's conversion, written here by hand), loads the file through
``build_encoder(name, checkpoint=path, **tiny)`` and checks that the features are identical.
Hugging Face layouts are produced by ``transformers`` itself and compared with its outputs.
"""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from damagemap.encoders import build_encoder
from damagemap.encoders.vit import SAT493M_MEAN, SAT493M_STD, VARIANTS, ViTEncoder

TINY16 = dict(embed_dim=32, depth=2, num_heads=2, img_size=64)
TINY14 = dict(embed_dim=32, depth=2, num_heads=2, img_size=56)
TINY_SAM = dict(embed_dim=32, depth=2, num_heads=2, img_size=64, global_attn_indexes=(1,), window_size=2)


def _source(name: str, arch: str | None = None, seed: int = 0, **cfg: object) -> ViTEncoder:
    """A tiny timm model of ``arch`` (default: the registered one) with random weights."""
    variant = VARIANTS[name]
    options = dict(cfg) if variant.family == "sam" else dict(cfg, dynamic_img_size=True)
    model = timm.create_model(arch or variant.arch, num_classes=0, **options)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-trivial values everywhere (biases, layer scales, tokens)
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return ViTEncoder(name, variant, model, 3).freeze()


def _state(enc: ViTEncoder) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in enc.model.state_dict().items()}


def _features(enc, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        (out,) = enc(x)
    return out


# -- timm -> official layouts (the converse of what the loader does) -----------------------------
def timm_to_official_dinov3(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm Eva (DINOv3) → facebookresearch/dinov3 keys (fused qkv bias with masked k part)."""
    dim = state["cls_token"].shape[-1]
    out = {"mask_token": torch.zeros(1, dim), "rope_embed.periods": torch.arange(1.0, 5.0)}
    for k, v in state.items():
        if k == "reg_token":
            out["storage_tokens"] = v
        elif "gamma_" in k:
            out[k.replace("gamma_1", "ls1.gamma").replace("gamma_2", "ls2.gamma")] = v
        elif k.endswith(("attn.q_bias", "attn.v_bias")):
            continue
        elif k.endswith("attn.qkv.weight"):
            out[k] = v
            p = k[: -len("qkv.weight")]
            zero, one = torch.zeros(dim), torch.ones(dim)
            q, vb = state.get(p + "q_bias", zero), state.get(p + "v_bias", zero)
            out[p + "qkv.bias"] = torch.cat([q, torch.randn(dim), vb])  # k bias is masked out
            out[p + "qkv.bias_mask"] = torch.cat([one, zero, one])
        else:
            out[k] = v
    return out


def timm_to_official_dinov2(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ViT (DINOv2) → facebookresearch/dinov2 keys."""
    out = {k: v for k, v in state.items() if k != "reg_token"}
    out["mask_token"] = torch.zeros(1, state["cls_token"].shape[-1])
    if "reg_token" in state:  # official pos_embed also covers the class token
        out["register_tokens"] = state["reg_token"]
        pos = state["pos_embed"]
        out["pos_embed"] = torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)
    return out


def timm_to_official_sam(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm SAM ViT → ``sam_vit_b_01ec64.pth`` keys, including prompt encoder / mask decoder."""
    out = {"image_encoder." + k.replace("mlp.fc", "mlp.lin"): v for k, v in state.items()}
    out["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = torch.randn(2, 128)
    out["mask_decoder.iou_token.weight"] = torch.randn(1, 256)
    return out


# -- DINOv3 --------------------------------------------------------------------------------------
@pytest.mark.parametrize("qkv_bias", [False, True])
def test_dinov3_official_pth_roundtrip(tmp_path, qkv_bias):
    arch = "vit_small_patch16_dinov3" + ("_qkvb" if qkv_bias else "")
    src = _source("dinov3-vits16", arch, **TINY16)
    path = tmp_path / "dinov3_vits16_pretrain.pth"
    torch.save(timm_to_official_dinov3(_state(src)), path)
    enc = build_encoder("dinov3-vits16", checkpoint=path, **TINY16)
    assert (enc.model.blocks[0].attn.q_bias is not None) == qkv_bias  # chosen from the file
    x = torch.rand(2, 3, 64, 96)
    assert torch.equal(_features(enc, x), _features(src, x))
    assert enc.fingerprint == src.fingerprint
    assert enc.channels == (32,) and enc.strides == (16,) and enc.size_multiple == 16
    assert _features(enc, x).shape == (2, 32, 4, 6)


def test_dinov3_official_without_storage_tokens(tmp_path):
    src = _source("dinov3-vits16", num_reg_tokens=0, **TINY16)
    path = tmp_path / "no_registers.pth"
    torch.save(timm_to_official_dinov3(_state(src)), path)
    enc = build_encoder("dinov3-vits16", checkpoint=path, **TINY16)
    assert enc.model.num_prefix_tokens == 1
    x = torch.rand(1, 3, 32, 64)
    assert torch.equal(_features(enc, x), _features(src, x))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_dinov3_timm_state_dict_roundtrip(tmp_path, suffix):
    src = _source("dinov3-vitb16", seed=3, **TINY16)
    path = tmp_path / f"timm_dinov3{suffix}"
    save_file(_state(src), path) if suffix == ".safetensors" else torch.save(_state(src), path)
    enc = build_encoder("dinov3-vitb16", checkpoint=path, **TINY16)
    x = torch.rand(1, 3, 48, 80)
    assert torch.equal(_features(enc, x), _features(src, x))


def test_dinov3_huggingface_safetensors_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.DINOv3ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        image_size=64,
        patch_size=16,
        num_register_tokens=4,
        layerscale_value=0.5,
    )
    torch.manual_seed(0)
    hf = transformers.DINOv3ViTModel(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "bias" in name or "lambda" in name:
                p.normal_(0, 0.1)
    hf.save_pretrained(tmp_path)
    enc = build_encoder("dinov3-vitl16", checkpoint=tmp_path, **TINY16)  # an HF model folder
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        ref = hf(pixel_values=(x - enc._mean) / enc._std).last_hidden_state[:, 5:]
    ours = _features(enc, x).flatten(2).transpose(1, 2)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_dinov3_sat_uses_satellite_normalisation():
    enc = build_encoder("dinov3-vitl16-sat", pretrained=False, **TINY16)
    assert enc.mean == pytest.approx(SAT493M_MEAN) and enc.std == pytest.approx(SAT493M_STD)
    assert VARIANTS["dinov3-vitl16-sat"].arch == VARIANTS["dinov3-vitl16"].arch


# -- DINOv2 --------------------------------------------------------------------------------------
@pytest.mark.parametrize("registers", [False, True])
def test_dinov2_official_pth_roundtrip(tmp_path, registers):
    arch = "vit_small_patch14_reg4_dinov2" if registers else None
    src = _source("dinov2-vits14", arch, **TINY14)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(timm_to_official_dinov2(_state(src)), path)
    enc = build_encoder("dinov2-vits14", checkpoint=path, **TINY14)
    assert (enc.model.reg_token is not None) == registers
    for size in [(56, 56), (84, 112)]:  # native grid and an interpolated one
        x = torch.rand(1, 3, *size)
        assert torch.equal(_features(enc, x), _features(src, x))
    assert _features(enc, x).shape == (1, 32, 6, 8)


def test_dinov2_timm_safetensors_roundtrip(tmp_path):
    src = _source("dinov2-vitb14", seed=5, **TINY14)
    path = tmp_path / "model.safetensors"
    save_file(_state(src), path)
    enc = build_encoder("dinov2-vitb14", checkpoint=path, **TINY14)
    x = torch.rand(1, 3, 70, 42)
    assert torch.equal(_features(enc, x), _features(src, x))


@pytest.mark.parametrize("registers", [False, True])
def test_dinov2_huggingface_safetensors_matches_transformers(tmp_path, registers):
    transformers = pytest.importorskip("transformers")
    kw = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14, layerscale_value=0.5
    )
    if registers:
        hf = transformers.Dinov2WithRegistersModel(transformers.Dinov2WithRegistersConfig(num_register_tokens=4, **kw))
    else:
        hf = transformers.Dinov2Model(transformers.Dinov2Config(**kw))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.1)
    hf.eval().save_pretrained(tmp_path)
    enc = build_encoder("dinov2-vits14", checkpoint=tmp_path / "model.safetensors", **TINY14)
    x = torch.rand(1, 3, 56, 56)  # the native grid (HF and official resize pos_embed differently)
    with torch.no_grad():
        ref = hf(pixel_values=(x - enc._mean) / enc._std).last_hidden_state[:, 1 + 4 * registers :]
    assert torch.allclose(_features(enc, x).flatten(2).transpose(1, 2), ref, atol=1e-5)


# -- SAM -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["official", "timm"])
def test_sam_checkpoint_roundtrip(tmp_path, layout):
    src = _source("sam-vitb", **TINY_SAM)
    state = timm_to_official_sam(_state(src)) if layout == "official" else _state(src)
    path = tmp_path / "sam_vit_b_tiny.pth"
    torch.save(state, path)
    enc = build_encoder("sam-vitb", checkpoint=path, **TINY_SAM)
    assert enc.channels == (256,) and enc.strides == (16,)  # the neck output
    x = torch.rand(1, 3, 64, 96)
    out = _features(enc, x)
    assert out.shape == (1, 256, 4, 6)
    assert torch.equal(out, _features(src, x))


# -- shared behaviour ----------------------------------------------------------------------------
def test_real_size_channels_and_strides():
    enc = build_encoder("dinov3-vits16", pretrained=False)
    assert (enc.channels, enc.strides, enc.size_multiple) == ((384,), (16,), 16)
    with pytest.raises(ValueError, match="divisible by 16"):
        enc(torch.rand(1, 3, 40, 48))
    for name, patch in [("dinov2-vits14", 14), ("dinov2-vitb14", 14), ("sam-vitb", 16)]:
        assert VARIANTS[name].patch == patch


def test_fingerprint_follows_weights():
    a = _source("dinov3-vits16", seed=0, **TINY16)
    b = _source("dinov3-vits16", seed=1, **TINY16)
    c = _source("dinov3-vits16", seed=0, **TINY16)
    assert a.fingerprint != b.fingerprint and a.fingerprint == c.fingerprint


def test_extra_bands_reuse_patch_embedding(tmp_path):
    src = _source("dinov2-vits14", **TINY14)
    path = tmp_path / "dinov2.pth"
    torch.save(timm_to_official_dinov2(_state(src)), path)
    enc = build_encoder("dinov2-vits14", checkpoint=path, in_chans=5, **TINY14)
    w = enc.model.patch_embed.proj.weight
    rgb = src.model.patch_embed.proj.weight
    assert w.shape[1] == 5 and torch.allclose(w[:, 3:5], rgb[:, 0:2] * 3 / 5)
    assert len(enc.mean) == 5 and _features(enc, torch.rand(1, 5, 28, 42)).shape == (1, 32, 2, 3)
