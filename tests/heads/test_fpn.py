"""The light FPN decoder for multi-scale CNN features."""

from __future__ import annotations

import pytest
import torch

from damagemap.heads import FPNHead

CHANNELS = (16, 24, 40, 112)


def _features(size: int, batch: int = 2) -> list[torch.Tensor]:
    return [torch.randn(batch, c, -(-size // s), -(-size // s)) for c, s in zip(CHANNELS, (4, 8, 16, 32))]


@pytest.mark.parametrize("size", [128, 100])
@pytest.mark.parametrize("out_channels", [1, 5])
def test_logits_at_input_size(size: int, out_channels: int) -> None:
    head = FPNHead(CHANNELS, out_channels)
    logits = head(_features(size), (size, size))
    assert logits.shape == (2, out_channels, size, size)


def test_embedding_at_stride_4() -> None:
    head = FPNHead(CHANNELS, 1, fpn_channels=32, embed_channels=48)
    assert head.decode(_features(128)).shape == (2, 48, 32, 32)
    assert head.embed_channels == 48


def test_single_map_works() -> None:
    head = FPNHead((64,), 1)
    assert head([torch.randn(1, 64, 8, 8)], (128, 128)).shape == (1, 1, 128, 128)


def test_wrong_number_of_maps() -> None:
    head = FPNHead(CHANNELS, 1)
    with pytest.raises(ValueError, match="4 feature maps"):
        head.decode(_features(128)[:3])
