"""The pair head: post and pre maps fused per level, then an ordinary head decodes them."""

from __future__ import annotations

import pytest
import torch

from damagemap.heads import build_head
from damagemap.heads.pair import PairHead, fused_channels

CHANNELS = (4, 6)


def _maps(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, 16 // (i + 1), 16 // (i + 1), generator=g) for i, c in enumerate(CHANNELS)]


def _head(fusion: str) -> PairHead:
    torch.manual_seed(0)
    head = build_head(
        "pair",
        in_channels=CHANNELS,
        out_channels=1,
        inner="fpn",
        fusion=fusion,
        inner_options={"fpn_channels": 8, "embed_channels": 8},
    )
    assert isinstance(head, PairHead)
    return head.eval()


def test_fusions_stack_post_pre_and_their_absolute_difference() -> None:
    post, pre = _maps(1), _maps(2)
    concat = _head("concat").fuse(post + pre)
    difference = _head("difference").fuse(post + pre)
    for level, (p, q) in enumerate(zip(post, pre)):
        c = CHANNELS[level]
        torch.testing.assert_close(concat[level], torch.cat([p, q, (p - q).abs()], dim=1))
        torch.testing.assert_close(difference[level], torch.cat([p, (p - q).abs()], dim=1))
        assert concat[level].shape[1] == fused_channels(c, "concat") == 3 * c
    learned = _head("learned").fuse(post + pre)
    assert [m.shape[1] for m in learned] == list(CHANNELS)  # back to C channels per level


@pytest.mark.parametrize("fusion", ["concat", "difference", "learned"])
def test_the_output_depends_on_the_pre_event_maps(fusion: str) -> None:
    head = _head(fusion)
    post = _maps(1)
    with torch.no_grad():
        same = head(post + [m.clone() for m in post], (16, 16))
        changed = head(post + _maps(2), (16, 16))
    assert same.shape == (2, 1, 16, 16)
    assert not torch.allclose(same, changed)


def test_a_pair_head_refuses_post_maps_alone() -> None:
    with pytest.raises(ValueError, match="expects 2 post-event and 2 pre-event maps, got 2"):
        _head("concat")(_maps(1), (16, 16))


def test_config_rebuilds_the_same_architecture_without_duplicate_weights() -> None:
    head = _head("learned")
    rebuilt = build_head(**head.config)
    assert rebuilt.config == head.config and head.config["inner"] == "fpn"
    keys = list(head.state_dict())
    assert not any(k.startswith("classifier.") for k in keys)  # saved once, under inner.
    rebuilt.load_state_dict(head.state_dict())
    rebuilt.eval()
    maps = _maps(1) + _maps(2)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(maps, (16, 16)), head(maps, (16, 16)))


def test_bad_fusion_or_nested_pairs_are_config_errors() -> None:
    from damagemap.errors import ConfigError

    with pytest.raises(ConfigError, match="fusion must be one of concat, difference, learned"):
        build_head("pair", in_channels=CHANNELS, out_channels=1, fusion="sum")
    with pytest.raises(ConfigError, match="cannot be another pair head"):
        build_head("pair", in_channels=CHANNELS, out_channels=1, inner="pair")
