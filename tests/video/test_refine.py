"""Tests for damagemap.video.refine: scores in [C0, C1] and their partners become the pair means."""

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
    # frame 0: det 0 (0.5) pairs with frame-1 det 2 (0.6) → 0.55; det 1 (0.9) starts no pair and
    # is nobody's match; det 2 (0.2) is the best match of frame-1 det 1 (0.4): both become 0.3
    torch.testing.assert_close(r0, torch.tensor([0.55, 0.9, 0.3]))
    # frame 1 (last) looks back at frame 0: det 1 (0.4) ↔ det 2 (0.2) → 0.3; det 2 (0.6) got
    # 0.55 as partner of frame-0 det 0 and 0.55 from its own pair with det 0 → 0.55
    torch.testing.assert_close(r1, torch.tensor([0.95, 0.3, 0.55]))


def test_partner_outside_the_band_gets_the_pair_mean():
    # the paper: "replace both confidences by their mean", whatever the partner's confidence
    scores = [torch.tensor([0.5, 0.1]), torch.tensor([0.9, 0.05])]
    r0, r1 = refine_scores(scores, [E[:2], E[:2]], c0=0.3, c1=0.7)
    torch.testing.assert_close(r0, torch.tensor([0.7, 0.1]))  # (0.5 + 0.9) / 2; 0.1 starts no pair
    # frame-1 det 0 (0.9, outside the band) is frame-0 det 0's partner: 0.7, not 0.9
    torch.testing.assert_close(r1, torch.tensor([0.7, 0.05]))


def test_labels_restrict_matches():
    scores = [torch.tensor([0.5]), torch.tensor([0.6, 0.1])]
    emb = [E[:1], E[[0, 1]]]
    labels = [torch.tensor([2]), torch.tensor([1, 2])]
    r0, r1 = refine_scores(scores, emb, 0.3, 0.7, labels)
    # the most similar frame-1 detection has label 1: the label-2 one (0.1) is used instead
    torch.testing.assert_close(r0, torch.tensor([0.3]))
    # frame-1 det 0 (label 1) has no label-1 partner; det 1 (0.1) is frame-0 det 0's partner
    torch.testing.assert_close(r1, torch.tensor([0.6, 0.3]))
    # without labels (the paper, refine.same_label: false) the most similar one is used
    r0, r1 = refine_scores(scores, emb, 0.3, 0.7)
    torch.testing.assert_close(r0, torch.tensor([0.55]))
    torch.testing.assert_close(r1, torch.tensor([0.55, 0.1]))


def test_refine_detections_follows_the_recipe():
    from damagemap.video.config import RefineConfig
    from damagemap.video.refine import refine_detections

    dets = [
        {"scores": torch.tensor([0.5]), "labels": torch.tensor([2])},
        {"scores": torch.tensor([0.6, 0.1]), "labels": torch.tensor([1, 2])},
    ]
    emb = [E[:1], E[[0, 1]]]
    paper = refine_detections(dets, emb, RefineConfig())
    torch.testing.assert_close(paper[0], torch.tensor([0.55]))
    same = refine_detections(dets, emb, RefineConfig(same_label=True))
    torch.testing.assert_close(same[0], torch.tensor([0.3]))
    off = refine_detections(dets, emb, RefineConfig(enabled=False))
    assert [r.tolist() for r in off] == [d["scores"].tolist() for d in dets]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(0, 0.5), st.floats(0.5, 1))
def test_only_band_scores_and_their_partners_change(seed, c0, c1):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(0, 6, (4,), generator=g).tolist()
    scores = [torch.rand(n, generator=g) for n in sizes]
    emb = [torch.randn(n, 5, generator=g) for n in sizes]
    refined = refine_scores(scores, emb, c0, c1)
    partners = [torch.zeros(n, dtype=torch.bool) for n in sizes]
    for t in range(len(scores)):
        u = t + 1 if t + 1 < len(scores) else t - 1
        if len(scores[t]) == 0 or len(scores[u]) == 0:
            continue
        sim = torch.nn.functional.normalize(emb[t], dim=1) @ torch.nn.functional.normalize(emb[u], dim=1).T
        for i in torch.nonzero((scores[t] >= c0) & (scores[t] <= c1)).flatten().tolist():
            partners[t][i] = True
            partners[u][int(sim[i].argmax())] = True
    lo, hi = min(float(s.min()) for s in scores if len(s)), max(float(s.max()) for s in scores if len(s))
    for s, r, p in zip(scores, refined, partners):
        assert torch.equal(r[~p], s[~p])  # in no pair: unchanged
        assert ((r >= lo - 1e-6) & (r <= hi + 1e-6)).all()  # means of scores


def test_roi_embeddings_follow_the_box_content():
    feats = {k: torch.zeros(1, 2, 64 >> i, 64 >> i) for i, k in enumerate("0123")}
    feats["0"][0, 0, :, :32] = 1  # left half of P2 is channel 0, right half channel 1
    feats["0"][0, 1, :, 32:] = 1
    boxes = torch.tensor([[8.0, 8.0, 40.0, 40.0], [150.0, 150.0, 190.0, 190.0]])
    emb = roi_embeddings(feats, boxes, (256, 256), output_size=2)
    assert emb.shape == (2, 8)
    assert emb[0, :4].min() > 0.99 and emb[0, 4:].abs().max() < 1e-6
    assert emb[1, 4:].min() > 0.99 and emb[1, :4].abs().max() < 1e-6
