"""Tests for damagemap.video.refine: only scores in [C0, C1] change, by the pair means."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from damagemap.video.refine import refine_scores, roi_embeddings

E = torch.eye(3)


def test_pairs_by_similarity_and_means():
    scores = [torch.tensor([0.5, 0.9, 0.2]), torch.tensor([0.95, 0.4, 0.6])]
    emb = [E, E[[1, 2, 0]]]  # frame-0 det 0 matches frame-1 det 2, det 1 ↔ det 0, det 2 ↔ det 1
    r0, r1 = refine_scores(scores, emb, c0=0.3, c1=0.7)
    # frame 0: det 0 (0.5) pairs with 0.6 → 0.55; 0.9 and 0.2 are outside the band
    torch.testing.assert_close(r0, torch.tensor([0.55, 0.9, 0.2]))
    # frame 1 (last) looks back at frame 0: det 1 (0.4) ↔ det 2 (0.2) → 0.3; det 2 (0.6) got
    # 0.55 as partner of frame-0 det 0 and 0.55 from its own pair with det 0 → 0.55
    torch.testing.assert_close(r1, torch.tensor([0.95, 0.3, 0.55]))


def test_labels_restrict_matches():
    scores = [torch.tensor([0.5]), torch.tensor([0.6, 0.1])]
    emb = [E[:1], E[[0, 1]]]
    labels = [torch.tensor([2]), torch.tensor([1, 2])]
    r0, r1 = refine_scores(scores, emb, 0.3, 0.7, labels)
    # the most similar frame-1 detection has label 1: the label-2 one (0.1) is used instead
    torch.testing.assert_close(r0, torch.tensor([0.3]))
    # frame-1 det 0 (label 1) has no label-1 partner; det 1 (0.1) is outside the band
    torch.testing.assert_close(r1, torch.tensor([0.6, 0.1]))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(0, 0.5), st.floats(0.5, 1))
def test_only_scores_in_band_change(seed, c0, c1):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(0, 6, (4,), generator=g).tolist()
    scores = [torch.rand(n, generator=g) for n in sizes]
    emb = [torch.randn(n, 5, generator=g) for n in sizes]
    refined = refine_scores(scores, emb, c0, c1)
    for s, r in zip(scores, refined):
        outside = (s < c0) | (s > c1)
        assert torch.equal(r[outside], s[outside])
        assert ((r >= 0) & (r <= 1)).all()


def test_roi_embeddings_follow_the_box_content():
    feats = {k: torch.zeros(1, 2, 64 >> i, 64 >> i) for i, k in enumerate("0123")}
    feats["0"][0, 0, :, :32] = 1  # left half of P2 is channel 0, right half channel 1
    feats["0"][0, 1, :, 32:] = 1
    boxes = torch.tensor([[8.0, 8.0, 40.0, 40.0], [150.0, 150.0, 190.0, 190.0]])
    emb = roi_embeddings(feats, boxes, (256, 256), output_size=2)
    assert emb.shape == (2, 8)
    assert emb[0, :4].min() > 0.99 and emb[0, 4:].abs().max() < 1e-6
    assert emb[1, 4:].min() > 0.99 and emb[1, :4].abs().max() < 1e-6
