"""SAM image encoders: HF SamModel safetensors, sam-vitl/vith registration, wrong-size checkpoints."""

from __future__ import annotations

import pytest
import torch

from damagemap.encoders import build_encoder
from damagemap.encoders.vit import VARIANTS
from damagemap.errors import CheckpointError
from tests.sam_tiny import SAM_ENC, save_hf, save_official, tiny_sam


def test_hf_sammodel_encoder_matches_transformers(tmp_path):
    sam = tiny_sam(seed=2)
    enc = build_encoder("sam-vitb", checkpoint=save_hf(sam, tmp_path), **SAM_ENC)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        (ours,) = enc(x)
        ref = sam.vision_encoder((x - enc._mean) / enc._std)[0]
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_large_and_huge_are_registered():
    assert VARIANTS["sam-vitl"].arch == "samvit_large_patch16"
    assert VARIANTS["sam-vith"].arch == "samvit_huge_patch16"


@pytest.mark.parametrize("layout", ["official", "hf"])
def test_wrong_sam_size_is_a_clear_error(tmp_path, layout):
    wide = tiny_sam(seed=3, width=48, depth=3)  # a "bigger SAM" than the encoder being built
    path = save_official(wide, tmp_path / "sam_big.pth") if layout == "official" else save_hf(wide, tmp_path)
    with pytest.raises(CheckpointError, match=r"48 ch, 3 blocks.*32 ch, 2 blocks") as err:
        build_encoder("sam-vitb", checkpoint=path, **SAM_ENC)
    assert str(path.name) in str(err.value)
