"""Tests for damagemap.video.srn: consistency distance, triplet loss and triplet sampling."""

from __future__ import annotations

import pytest
import torch

from damagemap.video.srn import (
    LEVELS,
    ScoreRefinementNetwork,
    consistency_distance,
    multiscale_consistency_loss,
    sample_triplets,
)


def _levels(seed: int, b: int = 2, c: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(b, c, 16 >> i, 16 >> i, generator=g) for i, k in enumerate(LEVELS)}


def test_distance_known_values():
    x = torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(consistency_distance(x, 2 * x), torch.zeros(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(consistency_distance(x, -x), torch.full((1,), 2.0))
    y = x.clone()
    y[:, :, 0, 0] *= -1  # one of nine locations flipped: mean cosine (8 − 1) / 9
    torch.testing.assert_close(consistency_distance(x, y), torch.full((1,), 1 - 7 / 9))


def test_loss_equal_features_is_margin_per_level():
    x = _levels(0)
    assert multiscale_consistency_loss(x, x, x, margin=1.0).item() == pytest.approx(4.0, abs=1e-5)
    assert multiscale_consistency_loss(x, x, x, margin=0.3).item() == pytest.approx(1.2, abs=1e-5)


def test_loss_perfect_and_worst_triplets():
    x = _levels(1)
    neg = {k: -v for k, v in x.items()}
    assert multiscale_consistency_loss(x, x, neg).item() == pytest.approx(0.0, abs=1e-6)  # 0 − 2 + 1 < 0
    # positive opposite, negative equal: Σ over 4 levels of (2 − 0 + 1)
    assert multiscale_consistency_loss(x, neg, x).item() == pytest.approx(12.0, abs=1e-5)


def test_loss_matches_elementwise_formula():
    a, p, n = _levels(2), _levels(3), _levels(4)
    expected = sum(
        torch.relu(consistency_distance(a[k], p[k]) - consistency_distance(a[k], n[k]) + 1) for k in LEVELS
    ).mean()
    torch.testing.assert_close(multiscale_consistency_loss(a, p, n), expected)


def test_srn_is_per_location_mlp_on_p2_to_p5():
    torch.manual_seed(0)
    srn = ScoreRefinementNetwork(in_channels=8, hidden=16, channels=4)
    feats = _levels(5) | {"pool": torch.randn(2, 8, 1, 1)}
    out = srn(feats)
    assert list(out) == list(LEVELS) and out["0"].shape == (2, 4, 16, 16)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in srn.modules()) == 3
    # per location: changing one pixel changes only that output location
    changed = {k: v.clone() for k, v in feats.items()}
    changed["0"][0, :, 3, 5] += 1
    diff = (srn(changed)["0"] - out["0"]).abs().sum(1)[0]
    assert torch.nonzero(diff).tolist() == [[3, 5]]


def test_triplets_respect_time_rules():
    times = [0.0, 0.3, 0.9, 5.0, 10.2, 10.5, 30.0]
    g = torch.Generator().manual_seed(0)
    triplets = sample_triplets(times, 0.5, 10.0, n=200, generator=g)
    assert len(triplets) == 200
    for a, p, n in triplets:
        assert a != p and abs(times[a] - times[p]) <= 0.5 and abs(times[a] - times[n]) >= 10.0
    assert {a for a, _, _ in triplets} == {0, 1, 4, 5}  # 0.9, 5.0, 30.0 have no positive
    assert sample_triplets([0.0, 0.2, 3.0], 0.5, 10.0, n=5) == []  # video shorter than 10 s
