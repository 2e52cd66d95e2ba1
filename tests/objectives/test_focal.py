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


@pytest.mark.parametrize(("alpha", "gamma"), [(0.7, 2.0), (0.25, 1.0), (-1.0, 0.0), (0.5, 1.5)])
@pytest.mark.parametrize("class_weights", [None, (0.4, 2.5)])
def test_values_and_gradients_match_torchvision_autograd(alpha: float, gamma: float, class_weights) -> None:
    """The closed-form gradient equals autograd through torchvision's formula (extreme logits included)."""
    from torchvision.ops import sigmoid_focal_loss

    gen = torch.Generator().manual_seed(3)
    logits = (torch.randn(2, 1, 8, 8, generator=gen, dtype=torch.float64) * 6).requires_grad_(True)
    with torch.no_grad():
        logits[0, 0, 0, :2] = torch.tensor([40.0, -40.0], dtype=torch.float64)  # saturated sigmoid
    mask = torch.randint(0, 3, (2, 8, 8), generator=gen)
    mask[mask == 2] = 255
    loss = BinaryFocalLoss(alpha=alpha, gamma=gamma, class_weights=class_weights)(_out(logits), {"mask": mask})
    (grad,) = torch.autograd.grad(loss, logits)

    reference = logits.detach().clone().requires_grad_(True)
    target = (mask == 1).unsqueeze(1).double()
    valid = (mask != 255).unsqueeze(1)
    per_pixel = sigmoid_focal_loss(reference, target, alpha, gamma, reduction="none")
    if class_weights is None:
        weight = valid.double()
    else:
        weight = torch.where(valid, class_weights[0] + (class_weights[1] - class_weights[0]) * target, 0.0)
    expected = (per_pixel * weight).sum() / weight.sum()
    (expected_grad,) = torch.autograd.grad(expected, reference)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)
    assert torch.all(grad[~valid] == 0)
