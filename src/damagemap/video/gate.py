"""Anchor gate of the hierarchical RPN: keep damage anchors that lie in building proposals."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchvision.ops import box_area, box_iou

GateKind = Literal["ii", "iou"]


def inner_intersection(anchors: Tensor, boxes: Tensor) -> Tensor:
    """``[A, P]`` matrix of |a ∩ p| / |a| for xyxy anchors ``a`` and boxes ``p``."""
    lt = torch.max(anchors[:, None, :2], boxes[None, :, :2])
    rb = torch.min(anchors[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    return inter / box_area(anchors).clamp(min=1e-6)[:, None]


def gate_scores(anchors: Tensor, boxes: Tensor, kind: GateKind = "ii", chunk: int = 8192) -> Tensor:
    """Per-anchor gate score: max over ``boxes`` of inner intersection (``ii``) or IoU.

    Anchors are processed in chunks so memory stays at ``chunk × len(boxes)``.
    """
    if boxes.numel() == 0:
        return anchors.new_zeros(anchors.shape[0])
    score = inner_intersection if kind == "ii" else box_iou
    return torch.cat([score(a, boxes).amax(dim=1) for a in anchors.split(chunk)])


def anchor_gate(anchors: Tensor, boxes: Tensor, kind: GateKind = "ii", threshold: float = 0.3) -> Tensor:
    """Boolean ``[A]`` mask of anchors whose gate score is strictly greater than ``threshold``."""
    return gate_scores(anchors, boxes, kind) > threshold
