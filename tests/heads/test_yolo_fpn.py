"""The small YOLO-style FPN segmenter baseline (fully trainable head on pixels)."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from damagemap.errors import ConfigError
from damagemap.heads import HEADS, build_head
from damagemap.heads.yolo_fpn import YoloFPNHead
from damagemap.objectives import BinaryFocalLoss, ForwardOutput

SIZE = 64


def test_registered_kind() -> None:
    assert HEADS["yolo_fpn"] is YoloFPNHead


def test_parameter_count_is_small() -> None:
    n = sum(p.numel() for p in YoloFPNHead(3, 1).parameters())
    assert 1e6 < n < 3e6


@pytest.mark.parametrize("out_channels", [1, 5])
@pytest.mark.parametrize("size", [SIZE, 72])
def test_logits_at_input_size_and_embedding_at_stride_4(out_channels: int, size: int) -> None:
    head = YoloFPNHead((3,), out_channels).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        emb = head.decode([x])
        logits = head([x], (size, size))
    assert emb.shape == (2, head.embed_channels, -(-size // 4), -(-size // 4))
    assert logits.shape == (2, out_channels, size, size)
    assert head.classifier.out_channels == out_channels


def test_options_change_widths() -> None:
    head = YoloFPNHead(4, 1, width=8, depths=(1, 1, 1, 1), embed_channels=24).eval()
    with torch.no_grad():
        assert head.decode([torch.randn(1, 4, SIZE, SIZE)]).shape == (1, 24, 16, 16)
    assert head.embed_channels == 24


@pytest.mark.parametrize("options", [{}, {"width": 8, "depths": [1, 1, 2, 1], "embed_channels": 32}])
def test_config_round_trip_through_json(options: dict) -> None:
    head = build_head("yolo_fpn", (3,), 2, **options)
    cfg = json.loads(json.dumps(head.config))
    assert cfg["kind"] == "yolo_fpn"
    rebuilt = build_head(**cfg)
    assert isinstance(rebuilt, YoloFPNHead)
    assert rebuilt.config == head.config
    a, b = head.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    rebuilt.load_state_dict(a)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="depths"):
        build_head("yolo_fpn", (3,), 1, depths=[1, 1])
    with pytest.raises(ConfigError, match="one input map"):
        build_head("yolo_fpn", (16, 32), 1)
    with pytest.raises(ConfigError, match="width"):
        build_head("yolo_fpn", (3,), 1, width=7)


def test_wrong_number_of_maps() -> None:
    with pytest.raises(ValueError, match="pixels"):
        YoloFPNHead(3, 1).decode([torch.randn(1, 3, 32, 32)] * 2)


def test_few_steps_of_training_reduce_the_loss() -> None:
    torch.manual_seed(0)
    x = F.avg_pool2d(torch.randn(4, 3, SIZE + 6, SIZE + 6), 7, stride=1) * 3
    mask = (x[:, 0] > 0.3).long()
    head = YoloFPNHead((3,), 1)
    head.train()
    loss_fn = BinaryFocalLoss(alpha=0.7, gamma=2.0)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-4)
    losses = []
    for _ in range(8):
        emb = head.decode([x])
        loss = loss_fn(ForwardOutput(head.classify(emb, (SIZE, SIZE)), emb, [x]), {"mask": mask})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
