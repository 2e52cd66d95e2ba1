"""BinaryFocalLoss."""

from __future__ import annotations

import math

import pytest
import torch

from damagemap.objectives import BinaryFocalLoss, ForwardOutput


def _out(logits: torch.Tensor) -> ForwardOutput:
    return ForwardOutput(logits=logits, embedding=logits, features=[])


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_one_positive_and_one_negative_pixel_by_formula() -> None:
    logits = torch.tensor([[[[0.5, -1.0, 30.0]]]], requires_grad=True)
    mask = torch.tensor([[[1, 0, 255]]])
    p1, p2 = _sigmoid(0.5), _sigmoid(-1.0)
    pos = -0.7 * (1 - p1) ** 2 * math.log(p1)  # α weights the positive class
    neg = -0.3 * p2**2 * math.log(1 - p2)
    loss = BinaryFocalLoss(alpha=0.7, gamma=2.0)(_out(logits), {"mask": mask})
    assert loss.item() == pytest.approx((pos + neg) / 2, rel=1e-6)
    loss.backward()
    assert logits.grad[0, 0, 0, 0] < 0 < logits.grad[0, 0, 0, 1]
    assert logits.grad[0, 0, 0, 2] == 0  # ignored pixel gets no gradient


def test_positive_classes() -> None:
    logits = torch.zeros(1, 1, 1, 2)
    mask = torch.tensor([[[2, 0]]])
    expected = (0.25 * 0.5**2 * math.log(2) + 0.75 * 0.5**2 * math.log(2)) / 2
    loss = BinaryFocalLoss(alpha=0.25, positive_classes=(1, 2))(_out(logits), {"mask": mask})
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_all_ignored_is_zero_and_differentiable() -> None:
    logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    loss = BinaryFocalLoss()(_out(logits), {"mask": torch.full((2, 4, 4), 255)})
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_rejects_multichannel_logits() -> None:
    with pytest.raises(ValueError, match=r"\[B,1,H,W\]"):
        BinaryFocalLoss()(_out(torch.zeros(1, 2, 4, 4)), {"mask": torch.zeros(1, 4, 4).long()})


def test_rejects_bad_alpha() -> None:
    with pytest.raises(ValueError, match="alpha"):
        BinaryFocalLoss(alpha=1.5)
