"""Tests for damagemap.video.gate on hand-made boxes."""

from __future__ import annotations

import torch

from damagemap.video.gate import anchor_gate, gate_scores, inner_intersection

BUILDING = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
ANCHORS = torch.tensor(
    [
        [2.0, 2.0, 6.0, 6.0],  # inside: II 1.0, IoU 0.16
        [5.0, 5.0, 15.0, 15.0],  # quarter inside: II 0.25, IoU 25/175
        [8.0, 0.0, 12.0, 10.0],  # half inside: II 0.5, IoU 20/120
        [0.0, 0.0, 10.0, 10.0],  # identical: II 1, IoU 1
        [20.0, 20.0, 30.0, 30.0],  # outside: 0, 0
        [-5.0, -5.0, 15.0, 15.0],  # contains the building: II 0.25, IoU 0.25
    ]
)


def test_inner_intersection_values():
    ii = inner_intersection(ANCHORS, BUILDING)[:, 0]
    torch.testing.assert_close(ii, torch.tensor([1.0, 0.25, 0.5, 1.0, 0.0, 0.25]))


def test_ii_gate_exact_kept_set():
    kept = anchor_gate(ANCHORS, BUILDING, "ii", 0.3)
    assert torch.nonzero(kept).flatten().tolist() == [0, 2, 3]


def test_iou_gate_exact_kept_set():
    torch.testing.assert_close(
        gate_scores(ANCHORS, BUILDING, "iou"), torch.tensor([0.16, 25 / 175, 20 / 120, 1.0, 0.0, 0.25])
    )
    assert torch.nonzero(anchor_gate(ANCHORS, BUILDING, "iou", 0.3)).flatten().tolist() == [3]
    assert torch.nonzero(anchor_gate(ANCHORS, BUILDING, "iou", 0.15)).flatten().tolist() == [0, 2, 3, 5]


def test_max_over_several_buildings_and_strict_threshold():
    buildings = torch.cat([BUILDING, torch.tensor([[18.0, 18.0, 28.0, 28.0]])])
    ii = gate_scores(ANCHORS, buildings, "ii")
    torch.testing.assert_close(ii, torch.tensor([1.0, 0.25, 0.5, 1.0, 0.64, 0.25]))
    assert torch.nonzero(anchor_gate(ANCHORS, buildings, "ii", 0.25)).flatten().tolist() == [0, 2, 3, 4]


def test_chunking_matches_and_no_buildings_gates_everything():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(1000, 2, generator=g) * 100
    anchors = torch.cat([xy, xy + 1 + torch.rand(1000, 2, generator=g) * 20], 1)
    boxes = anchors[:37] + 3
    torch.testing.assert_close(gate_scores(anchors, boxes, "ii", chunk=64), gate_scores(anchors, boxes, "ii"))
    assert not anchor_gate(anchors, torch.zeros(0, 4)).any()
