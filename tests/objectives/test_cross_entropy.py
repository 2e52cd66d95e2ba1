"""CrossEntropyLoss."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from damagemap.objectives import CrossEntropyLoss, ForwardOutput


def _out(logits: torch.Tensor) -> ForwardOutput:
    return ForwardOutput(logits=logits, embedding=logits, features=[])


def test_uniform_logits_give_log_k() -> None:
    mask = torch.tensor([[[0, 2, 255]]])
    assert CrossEntropyLoss()(_out(torch.zeros(1, 3, 1, 3)), {"mask": mask}).item() == (
        pytest.approx(math.log(3), rel=1e-6)
    )


@pytest.mark.parametrize("weights", [None, [0.2, 1.0, 3.0]])
def test_matches_torch(weights: list[float] | None) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 5)
    mask = torch.randint(0, 3, (2, 5, 5))
    mask[0, :2] = 255
    w = None if weights is None else torch.tensor(weights)
    expected = F.cross_entropy(logits, mask, weight=w, ignore_index=255)
    loss = CrossEntropyLoss(class_weights=weights)(_out(logits), {"mask": mask})
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("weights", [None, [1.0, 2.0]])
def test_all_ignored_is_zero_and_differentiable(weights: list[float] | None) -> None:
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    loss = CrossEntropyLoss(weights)(_out(logits), {"mask": torch.full((2, 4, 4), 255)})
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_gradient_skips_ignored_pixels() -> None:
    logits = torch.randn(1, 2, 2, 2, requires_grad=True)
    mask = torch.tensor([[[0, 1], [255, 1]]])
    CrossEntropyLoss()(_out(logits), {"mask": mask}).backward()
    assert torch.all(logits.grad[0, :, 1, 0] == 0)
    assert logits.grad[0, :, 0, 0].abs().sum() > 0


def test_rejects_single_channel() -> None:
    with pytest.raises(ValueError, match="K >= 2"):
        CrossEntropyLoss()(_out(torch.zeros(1, 1, 2, 2)), {"mask": torch.zeros(1, 2, 2).long()})
