"""build_head, config round-trip, and that heads learn."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from damagemap.errors import ConfigError
from damagemap.heads import HEADS, build_head
from damagemap.objectives import BinaryFocalLoss, ForwardOutput


@pytest.mark.parametrize(
    ("kind", "in_channels", "options"),
    [
        ("progressive", (1024,), {}),
        ("progressive", (64,), {"mid_channels": 32, "n_stages": 3}),
        ("fpn", (16, 24, 40, 112), {}),
        ("fpn", (16, 24), {"fpn_channels": 8, "embed_channels": 12}),
    ],
)
def test_config_round_trip(kind: str, in_channels: tuple[int, ...], options: dict) -> None:
    head = build_head(kind, in_channels, 3, **options)
    assert head.config["kind"] == kind
    rebuilt = build_head(**json.loads(json.dumps(head.config)))
    assert rebuilt.config == head.config
    a, b = head.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    rebuilt.load_state_dict(a)


def test_unknown_kind_lists_known() -> None:
    assert {"progressive", "fpn", "unet", "yolo_fpn"} <= set(HEADS)
    with pytest.raises(ConfigError, match="unknown head kind 'segformer'; known kinds: .*progressive"):
        build_head("segformer", (64,), 1)


def test_unknown_option() -> None:
    with pytest.raises(ConfigError, match="fpn_channels"):
        build_head("progressive", (64,), 1, fpn_channels=8)


def test_invalid_value_is_config_error() -> None:
    with pytest.raises(ConfigError, match="progressive"):
        build_head("progressive", (64,), 1, n_stages=0)


@pytest.mark.parametrize(
    ("kind", "shapes", "options"),
    [
        ("progressive", [(8, 4, 4)], {"mid_channels": 16}),
        ("fpn", [(8, 16, 16), (8, 8, 8), (8, 4, 4)], {"fpn_channels": 16, "embed_channels": 16}),
    ],
)
def test_training_reduces_loss(kind: str, shapes: list[tuple[int, int, int]], options: dict) -> None:
    torch.manual_seed(0)
    features = [torch.randn(8, *s) for s in shapes]
    # Damage wherever the sign of channel 0 of the coarsest map is positive (at 64 px).
    mask = (F.interpolate(features[-1][:, :1], size=(64, 64)) > 0).long()[:, 0]
    mask[:, :4] = 255
    head = build_head(kind, tuple(s[0] for s in shapes), 1, **options)
    loss_fn = BinaryFocalLoss()
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        emb = head.decode(features)
        out = ForwardOutput(head.classify(emb, (64, 64)), emb, features)
        loss = loss_fn(out, {"mask": mask})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
