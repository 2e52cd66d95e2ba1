"""Bilinear logit resizing by interpolation matrices."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from damagemap.heads.resize import bilinear_matmul, interpolation_matrix, resize_logits


@pytest.mark.parametrize("size", [(256, 256), (37, 53), (20, 11), (100, 7), (16, 16)])
def test_matches_interpolate_values_and_gradients(size: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    out = bilinear_matmul(x, size)
    ref = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    (grad,) = torch.autograd.grad(out, x, g)
    (ref_grad,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-12)


def test_rows_of_the_matrix_sum_to_one_with_two_neighbours_at_most() -> None:
    m = interpolation_matrix(5, 13, torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(m.sum(1), torch.ones(13, dtype=torch.float64))
    assert int((m > 0).sum(1).max()) <= 2


def test_resize_logits_uses_interpolate_without_autograd_and_keeps_same_size() -> None:
    x = torch.randn(1, 2, 8, 8)
    assert resize_logits(x, (8, 8)) is x
    with torch.no_grad():
        torch.testing.assert_close(resize_logits(x, (32, 32)), F.interpolate(x, size=(32, 32), mode="bilinear"))
    trained = x.clone().requires_grad_(True)
    out = resize_logits(trained, (32, 32))
    assert out.grad_fn is not None and "Upsample" not in type(out.grad_fn).__name__
