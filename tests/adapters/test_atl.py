"""ATL modules on tiny SAM / DINOv2 / DINOv3 encoders: placement, residual, FFT, gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from damagemap.adapters import attach_adapter, has_trainable_parameters, parameter_counts
from damagemap.adapters.atl import fft_highpass
from damagemap.encoders import build_encoder
from damagemap.errors import ConfigError
from damagemap.heads import build_head
from tests.sam_tiny import SAM_ENC, SAM_HEAD
from tests.tiny import TinyEncoder

ENCODERS = {  # name → (tiny timm options, input size)
    "sam-vitb": (SAM_ENC, 64),
    "dinov2-vits14": (dict(embed_dim=32, depth=2, num_heads=2, img_size=56), 56),
    "dinov3-vits16": (dict(embed_dim=32, depth=2, num_heads=2, img_size=64), 64),
}


def _encoder(name: str):
    torch.manual_seed(0)
    opts, size = ENCODERS[name]
    enc = build_encoder(name, pretrained=False, **opts)
    with torch.no_grad():  # DINO layer scales start at 1e-5: make the blocks matter
        for n, p in enc.named_parameters():
            if "gamma" in n:
                p.fill_(1.0)
    return enc, size


def _features(enc, x):
    with torch.no_grad():
        return enc(x)[0]


def _set_up(enc, scale: float) -> None:
    """Up-projections set to ``scale · N(0, 1)`` (0: ATL then adds nothing; its output is 0)."""
    atl = enc.atl
    ups = [atl.prompt.shared_up] if atl.placement == "prompt" else [a.up for a in atl.adapters]
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for up in ups:
            up.weight.copy_(torch.randn(up.weight.shape, generator=g) * scale)
            up.bias.copy_(torch.randn(up.bias.shape, generator=g) * scale)


def _zero_up(enc) -> None:
    _set_up(enc, 0.0)


def test_fft_highpass_removes_a_constant_and_keeps_fine_detail():
    const = torch.full((1, 3, 32, 32), 0.7)
    assert fft_highpass(const).abs().max() < 1e-5
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2).float().expand(1, 3, 32, 32)
    high = fft_highpass(checker - 0.5)  # Nyquist-frequency pattern lies outside the removed square
    torch.testing.assert_close(high, (checker - 0.5).abs(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(ENCODERS))
@pytest.mark.parametrize("placement", ["prompt", "block"])
def test_zero_up_projection_is_identity_and_residual_off_replaces_only_inside_blocks(name, placement):
    base, size = _encoder(name)
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    ref = _features(base, x)
    with_res = attach_adapter(
        copy.deepcopy(base), "atl", {"placement": placement, "residual": True, "prompt_reduction": 4}
    )
    _set_up(with_res, 0.5)
    assert not torch.allclose(_features(with_res, x), ref, atol=1e-3)  # ATL changes the features
    _zero_up(with_res)
    torch.testing.assert_close(_features(with_res, x), ref)  # x + 0 = x
    no_res = attach_adapter(
        copy.deepcopy(base), "atl", {"placement": placement, "residual": False, "prompt_reduction": 4}
    )
    _zero_up(no_res)
    if placement == "block":  # off: the attention output is replaced by the adapter's (zero) output
        assert not torch.allclose(_features(no_res, x), ref, atol=1e-3)
    else:  # off: block_i(x + 0) - 0 — a zero prompt changes nothing, the stream is never replaced
        torch.testing.assert_close(_features(no_res, x), ref)


def test_prompt_path_uses_the_fft_of_the_image():
    """Prompts depend on the image's high frequencies: adding a constant to the image changes the
    embedding path only; with the embedding path zeroed the output is unchanged."""
    enc, size = _encoder("dinov2-vits14")
    attach_adapter(enc, "atl", {"placement": "prompt", "prompt_reduction": 4})
    with torch.no_grad():
        enc.atl.prompt.embedding.weight.zero_()
        enc.atl.prompt.embedding.bias.zero_()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    prompts_a = enc.atl.prompt(x, torch.zeros(1, 16, 32))
    prompts_b = enc.atl.prompt(x + 0.3, torch.zeros(1, 16, 32))
    torch.testing.assert_close(prompts_a[0], prompts_b[0])
    assert len(prompts_a) == 2 and prompts_a[0].shape == (1, 16, 32)


@pytest.mark.parametrize("placement", ["prompt", "block"])
def test_gradients_reach_only_atl_and_decoder_and_share_is_counted(placement):
    enc, size = _encoder("sam-vitb")
    attach_adapter(enc, "atl", {"placement": placement, "prompt_reduction": 4})
    head = build_head("sam_decoder", enc.channels, 1, **SAM_HEAD)
    assert has_trainable_parameters(enc)
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    head(enc(x), (size, size)).sum().backward()
    with_grad = {n for n, p in enc.named_parameters() if p.grad is not None}
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert with_grad == trainable and all(n.startswith("atl.") for n in with_grad) and with_grad
    assert all(p.grad is None for n, p in enc.named_parameters() if not n.startswith("atl."))
    assert all(p.grad is not None for p in head.parameters() if p.requires_grad)
    counts = parameter_counts(enc, head)
    atl_n = sum(p.numel() for p in enc.atl.parameters())
    head_n = sum(p.numel() for p in head.parameters() if p.requires_grad)
    total = sum(p.numel() for p in enc.parameters()) + sum(p.numel() for p in head.parameters())
    assert counts["trainable"] == atl_n + head_n and counts["total"] == total
    assert counts["share"] == pytest.approx((atl_n + head_n) / total)


def test_prompt_widths_follow_the_reduction_ratios():
    enc, _ = _encoder("sam-vitb")  # C = 32
    attach_adapter(enc, "atl", {"placement": "prompt", "prompt_reduction": 8})
    p = enc.atl.prompt
    assert p.embedding.weight.shape == (4, 32) and p.shared_up.weight.shape == (32, 4)
    assert p.handcrafted.weight.shape == (4, 3, 16, 16) and len(p.tuning) == 2
    blk, _ = _encoder("sam-vitb")
    attach_adapter(blk, "atl", {"placement": "block", "adapter_reduction": 4})
    assert blk.atl.adapters[0].down.weight.shape == (8, 32)


def test_deepcopy_retargets_hooks_to_the_copied_modules():
    enc, size = _encoder("sam-vitb")
    attach_adapter(enc, "atl", {"placement": "block"})
    clone = copy.deepcopy(enc)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(4))
    before = _features(enc, x)
    _zero_up(clone)
    clone.atl.adapters[0].residual = False
    torch.testing.assert_close(_features(enc, x), before)  # the original is untouched
    assert not torch.allclose(_features(clone, x), before, atol=1e-4)


def test_atl_needs_a_vit_and_valid_options():
    with pytest.raises(ConfigError, match="ViT"):
        attach_adapter(TinyEncoder(), "atl", {})
    enc, _ = _encoder("sam-vitb")
    with pytest.raises(ConfigError, match="placement"):
        attach_adapter(enc, "atl", {"placement": "middle"})


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("placement", ["prompt", "block"])
@pytest.mark.parametrize("name", list(ENCODERS))
def test_every_variant_depends_on_the_early_blocks(name, placement, residual):
    """ATL must never cut the encoder's residual stream: changing block 0 changes the output."""
    enc, size = _encoder(name)
    attach_adapter(enc, "atl", {"placement": placement, "residual": residual, "prompt_reduction": 4})
    _set_up(enc, 0.5)
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(6))
    before = _features(enc, x)
    with torch.no_grad():
        first = enc.model.blocks[0]
        first.mlp.fc2.weight.add_(torch.randn(first.mlp.fc2.weight.shape, generator=torch.Generator().manual_seed(7)))
    assert not torch.allclose(_features(enc, x), before, atol=1e-3)


def test_prompt_residual_off_keeps_the_prompt_out_of_the_shortcut():
    """Off: x_{i+1} = block_i(x_i + p_i) - p_i, so with identity blocks the prompts cancel."""
    enc, size = _encoder("dinov2-vits14")
    on = attach_adapter(copy.deepcopy(enc), "atl", {"placement": "prompt", "residual": True, "prompt_reduction": 4})
    off = attach_adapter(copy.deepcopy(enc), "atl", {"placement": "prompt", "residual": False, "prompt_reduction": 4})
    for e in (on, off):
        _set_up(e, 0.5)
        for block in e.model.blocks:  # make every block the identity: branches contribute nothing
            block.ls1.gamma.data.zero_()
            block.ls2.gamma.data.zero_()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(8))
    for block in enc.model.blocks:
        block.ls1.gamma.data.zero_()
        block.ls2.gamma.data.zero_()
    ref = _features(enc, x)
    torch.testing.assert_close(_features(off, x), ref, atol=1e-5, rtol=1e-5)  # prompts cancel exactly
    assert not torch.allclose(_features(on, x), ref, atol=1e-3)  # on: the prompts stay in the stream


@pytest.mark.parametrize(("size", "rate"), [(64, 0.25), (32, 0.25), (64, 0.0625)])
def test_fft_removes_rate_of_the_spectrum_area(size, rate):
    from damagemap.adapters.atl import highpass_mask

    mask = highpass_mask(size, size, rate)
    assert (mask == 0).float().mean().item() == pytest.approx(rate, abs=0.02)
    # the removed square is centred on the zero frequency of the shifted spectrum
    assert mask[size // 2, size // 2] == 0 and mask[0, 0] == 1
