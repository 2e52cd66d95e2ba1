"""The Smart Transfer progressive decoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from damagemap.heads import ProgressiveHead


@pytest.mark.parametrize(
    ("grid", "size"),
    [(8, 128), (9, 126), (4, 128)],  # stride 16, stride 14 (resized), stride 32 (resized)
)
@pytest.mark.parametrize("out_channels", [1, 4])
def test_logits_at_input_size(grid: int, size: int, out_channels: int) -> None:
    head = ProgressiveHead(in_channels=(32,), out_channels=out_channels, mid_channels=16)
    logits = head([torch.randn(2, 32, grid, grid)], (size, size))
    assert logits.shape == (2, out_channels, size, size)


def test_uses_last_feature_map_and_decode_has_256_channels() -> None:
    head = ProgressiveHead(in_channels=(8, 48), out_channels=1)
    emb = head.decode([torch.randn(1, 8, 32, 32), torch.randn(1, 48, 8, 8)])
    assert emb.shape == (1, 256, 128, 128)
    assert head.embed_channels == 256


def test_layer_sequence_matches_spec() -> None:
    head = ProgressiveHead(in_channels=(1024,), out_channels=1)
    leaves = [m for m in head.modules() if not list(m.children())]
    assert [type(m) for m in leaves] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Upsample] * 4 + [nn.Conv2d]
    convs = [m for m in leaves if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1024, 256),
        (256, 256),
        (256, 256),
        (256, 256),
        (256, 1),
    ]
    for conv in convs[:4]:
        assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.bias is None
    assert convs[4].kernel_size == (1, 1) and convs[4].bias is not None
    for up in (m for m in leaves if isinstance(m, nn.Upsample)):
        assert up.mode == "nearest" and up.scale_factor == 2
    assert head.classifier is convs[4]


def test_options() -> None:
    head = ProgressiveHead(in_channels=16, out_channels=3, mid_channels=8, n_stages=2)
    assert head.decode([torch.randn(1, 16, 8, 8)]).shape == (1, 8, 32, 32)
    with pytest.raises(ValueError, match="n_stages"):
        ProgressiveHead(in_channels=16, out_channels=1, n_stages=0)
