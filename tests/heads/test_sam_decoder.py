"""SAM mask-decoder head: official and Hugging Face checkpoints give transformers' SamModel output."""

from __future__ import annotations

import pytest
import torch

from damagemap.encoders import build_encoder
from damagemap.errors import CheckpointError, ConfigError
from damagemap.heads import build_head
from tests.sam_tiny import SAM_ENC, SAM_HEAD, save_hf, save_official, tiny_sam


@pytest.fixture(scope="module")
def sam():
    return tiny_sam(seed=1)


def _reference(sam, enc, x: torch.Tensor) -> torch.Tensor:
    """transformers SamModel, no prompts, single mask: ``[B, 1, 4h, 4w]`` logits."""
    with torch.no_grad():
        xn = (x - enc._mean) / enc._std
        return sam(pixel_values=xn, multimask_output=False).pred_masks[:, 0]


@pytest.mark.parametrize("layout", ["official", "hf"])
def test_checkpoint_layouts_reproduce_transformers_sam(sam, tmp_path, layout):
    path = save_official(sam, tmp_path / "sam_vit_b_tiny.pth") if layout == "official" else save_hf(sam, tmp_path)
    enc = build_encoder("sam-vitb", checkpoint=path, **SAM_ENC)
    head = build_head("sam_decoder", enc.channels, 1, checkpoint=str(path), **SAM_HEAD).eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = enc(x)
        low = head.decode(feats)
        full = head(feats, (64, 64))
    ref = _reference(sam, enc, x)
    assert low.shape == ref.shape == (2, 1, 16, 16)
    torch.testing.assert_close(low, ref, rtol=1e-4, atol=1e-5)
    assert full.shape == (2, 1, 64, 64)
    torch.testing.assert_close(
        full, torch.nn.functional.interpolate(ref, size=(64, 64), mode="bilinear"), rtol=1e-4, atol=1e-5
    )


def test_trainable_parts_and_config_rebuild(sam, tmp_path):
    path = save_official(sam, tmp_path / "sam.pth")
    head = build_head("sam_decoder", (32,), 1, checkpoint=str(path), **SAM_HEAD)
    frozen = {
        n.split(".")[1] if n.startswith("mask_decoder.") else n
        for n, p in head.named_parameters()
        if not p.requires_grad
    }
    # the fixed Fourier encoding and the parts that never reach the single mask
    assert frozen == {"pe.positional_embedding", "iou_prediction_head", "output_hypernetworks_mlps"}
    assert all(p.requires_grad for p in head.mask_decoder.output_hypernetworks_mlps[0].parameters())
    assert head.no_mask_embed.weight.requires_grad
    rebuilt = build_head(**head.config)  # no checkpoint needed to rebuild the architecture
    assert rebuilt.load_state_dict(head.state_dict()).missing_keys == []


def test_rejects_multiclass_and_foreign_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="binary"):
        build_head("sam_decoder", (32,), 3, **SAM_HEAD)
    bogus = tmp_path / "not_sam.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, bogus)
    with pytest.raises(CheckpointError, match="not_sam.pth.*mask_decoder"):
        build_head("sam_decoder", (32,), 1, checkpoint=str(bogus), **SAM_HEAD)
