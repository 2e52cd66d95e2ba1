"""DiceLoss."""

from __future__ import annotations

import pytest
import torch

from damagemap.objectives import DiceLoss, ForwardOutput


def _out(logits: torch.Tensor) -> ForwardOutput:
    return ForwardOutput(logits=logits, embedding=logits, features=[])


def test_binary_by_hand() -> None:
    logits = torch.tensor([[[[0.0, 0.0, 0.0, 9.0]]]])  # p = 0.5 on the valid pixels
    mask = torch.tensor([[[1, 0, 1, 255]]])
    # Σp = 1.5, Σt = 2, Σpt = 1 → dice = (2 + 1) / (1.5 + 2 + 1) = 2/3
    assert DiceLoss()(_out(logits), {"mask": mask}).item() == pytest.approx(1 / 3, rel=1e-6)


def test_multiclass_by_hand() -> None:
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 1, 0, 3] = 9.0  # ignored pixel
    mask = torch.tensor([[[0, 1, 1, 255]]])
    dice0 = (2 * 0.5 + 1) / (1.5 + 1 + 1)
    dice1 = (2 * 1.0 + 1) / (1.5 + 2 + 1)
    loss = DiceLoss()(_out(logits), {"mask": mask})
    assert loss.item() == pytest.approx(1 - (dice0 + dice1) / 2, rel=1e-6)


def test_perfect_prediction_is_near_zero() -> None:
    mask = torch.tensor([[[0, 1], [2, 1]]])
    logits = 50 * torch.nn.functional.one_hot(mask, 3).permute(0, 3, 1, 2).float()
    assert DiceLoss()(_out(logits), {"mask": mask}).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_all_ignored_is_zero_and_differentiable(channels: int) -> None:
    logits = torch.randn(2, channels, 4, 4, requires_grad=True)
    loss = DiceLoss()(_out(logits), {"mask": torch.full((2, 4, 4), 255)})
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("channels", [1, 3])
def test_gradient_flows(channels: int) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, channels, 4, 4, requires_grad=True)
    mask = torch.randint(0, max(channels, 2), (2, 4, 4))
    mask[0, 0, 0] = 255
    DiceLoss()(_out(logits), {"mask": mask}).backward()
    assert torch.all(logits.grad[0, :, 0, 0] == 0)
    assert logits.grad.abs().sum() > 0


def test_rejects_zero_smooth() -> None:
    with pytest.raises(ValueError, match="smooth"):
        DiceLoss(smooth=0)
