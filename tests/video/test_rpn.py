"""Tests for damagemap.video.rpn: gated-out anchors give neither proposals nor RPN loss."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from damagemap.video.rpn import GatedRPN

SIZE, STRIDE = 64, 8
N = (SIZE // STRIDE) ** 2  # one anchor per location


class FixedHead(nn.Module):
    """An RPN head whose objectness and deltas are parameters, so their gradients can be read."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.obj = nn.Parameter(torch.randn(1, 1, SIZE // STRIDE, SIZE // STRIDE, generator=g))
        self.deltas = nn.Parameter(torch.zeros(1, 4, SIZE // STRIDE, SIZE // STRIDE))

    def forward(self, features):
        return [self.obj], [self.deltas]


def _rpn() -> GatedRPN:
    anchors = AnchorGenerator(((16,),), ((1.0,),))
    return GatedRPN(
        anchors,
        FixedHead(),
        0.7,
        0.3,
        256,
        0.5,
        {"training": 100, "testing": 100},
        {"training": 100, "testing": 100},
        0.7,
    )


def _inputs():
    images = ImageList(torch.zeros(1, 3, SIZE, SIZE), [(SIZE, SIZE)])
    features = {"0": torch.zeros(1, 4, SIZE // STRIDE, SIZE // STRIDE)}
    targets = [{"boxes": torch.tensor([[1.0, 1.0, 17.0, 17.0], [40.0, 40.0, 56.0, 56.0]])}]
    return images, features, targets


def test_gated_out_anchors_have_no_loss_gradient_and_no_proposals():
    torch.manual_seed(0)
    rpn = _rpn().train()
    images, features, targets = _inputs()
    keep = torch.zeros(N, dtype=torch.bool)
    keep[: N // 2] = True  # top half of the image (rows 0-3)
    boxes, losses = rpn(images, features, targets, keep=[keep])
    sum(losses.values()).backward()
    obj_grad = rpn.head.obj.grad.flatten()
    delta_grad = rpn.head.deltas.grad.abs().sum(1).flatten()
    assert torch.all(obj_grad[~keep] == 0) and torch.all(delta_grad[~keep] == 0)
    assert (obj_grad[keep] != 0).sum() > 10  # kept anchors are sampled: positives and negatives
    assert delta_grad[keep].sum() > 0  # the top-left ground-truth box is matched
    # zero deltas: proposals are the (clipped) anchors, all from the kept half
    assert len(boxes[0]) > 0 and (boxes[0][:, 1] < SIZE / 2).all()


def test_gate_changes_nothing_for_kept_anchors_when_all_kept():
    images, features, targets = _inputs()
    rpn = _rpn().eval()
    gated, _ = rpn(images, features, keep=[torch.ones(N, dtype=torch.bool)])
    plain, _ = rpn(images, features)
    torch.testing.assert_close(gated[0], plain[0])


def test_everything_gated_gives_zero_loss_and_no_proposals():
    rpn = _rpn().train()
    images, features, targets = _inputs()
    boxes, losses = rpn(images, features, targets, keep=[torch.zeros(N, dtype=torch.bool)])
    assert len(boxes[0]) == 0
    assert all(torch.isfinite(v) and v.item() == 0 for v in losses.values())
    sum(losses.values()).backward()  # still part of the graph
    assert torch.all(rpn.head.obj.grad == 0)
