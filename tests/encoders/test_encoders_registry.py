"""Registry contents, ResNet encoders and the frozen-encoder contract."""

from __future__ import annotations

import pytest
import timm
import torch

from damagemap.encoders import build_encoder, list_encoders
from damagemap.errors import ConfigError

EXPECTED = {
    "efficientnet-lite0",
    "efficientnet-lite2",
    "resnet18",
    "resnet152",
    "dinov3-vits16",
    "dinov3-vitb16",
    "dinov3-vitl16",
    "dinov3-vitl16-sat",
    "dinov2-vits14",
    "dinov2-vitb14",
    "sam-vitb",
}


def test_registry_lists_all_encoders():
    specs = {s.name: s for s in list_encoders()}
    assert set(specs) >= EXPECTED
    assert specs["efficientnet-lite0"].offline_weights
    assert all(specs[n].description for n in EXPECTED)


def test_unknown_encoder_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown encoder 'nope'.*efficientnet-lite0"):
        build_encoder("nope")


@pytest.mark.parametrize(
    ("name", "channels"),
    [("resnet18", (64, 128, 256, 512)), ("resnet152", (256, 512, 1024, 2048))],
)
def test_resnet_random_init_shapes(name, channels):
    enc = build_encoder(name, pretrained=False)
    assert enc.channels == channels and enc.strides == (4, 8, 16, 32)
    assert enc.checkpoint_sha256 is None
    assert all(not p.requires_grad for p in enc.parameters()) and not enc.training
    if name == "resnet18":
        with torch.no_grad():
            feats = enc(torch.rand(1, 3, 64, 96))
        assert [tuple(f.shape[1:]) for f in feats] == [(c, 64 // s, 96 // s) for c, s in zip(channels, enc.strides)]


def test_resnet_checkpoint_roundtrip(tmp_path):
    full = timm.create_model("resnet18").eval()  # timm and torchvision share these key names
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": full.state_dict()}, path)
    enc = build_encoder("resnet18", checkpoint=path)
    assert enc.checkpoint_sha256 is not None
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = full.layer4(
            full.layer3(
                full.layer2(full.layer1(full.maxpool(full.act1(full.bn1(full.conv1((x - enc._mean) / enc._std))))))
            )
        )
        assert torch.equal(enc(x)[-1], expected)
    other = build_encoder("resnet18", pretrained=False)
    assert other.fingerprint != enc.fingerprint
