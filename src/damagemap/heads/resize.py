"""Bilinear resizing of logits as two small matrix products, for training on the CPU.

``F.interpolate(..., mode="bilinear", align_corners=False)`` is separable: each output row is a
weighted sum of two input rows, each output column of two input columns. With ``A_h`` ``[H, h]``
and ``A_w`` ``[W, w]`` holding those weights, the resize is ``A_h · x · A_wᵀ`` per channel — the
same values up to float rounding (~1e-6). On the CPU its gradient (two matmuls) ran ~3×
faster than ``upsample_bilinear2d_backward``, a scatter-add that dominated the head's
logit resize (4 → 1× stride, [8, 1, 64, 64] → 256 px: 4.6–7.5 ms against 1.7–2.1 ms per
forward + backward), while the forward alone is no faster; so :func:`resize_logits` uses the
matrices only when autograd records and calls ``F.interpolate`` otherwise.
"""

from __future__ import annotations

import functools

import torch
from torch.nn import functional as F


@functools.lru_cache(maxsize=64)
def _weights(n_in: int, n_out: int) -> torch.Tensor:
    """``[n_out, n_in]`` float64 weights of 1-D linear interpolation with align_corners=False."""
    # PyTorch's source coordinate: (dst + 0.5) * in/out - 0.5, clamped at 0; the right neighbour
    # is clamped at the last pixel.
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
    left = src.floor().long().clamp_max(n_in - 1)
    right = (left + 1).clamp_max(n_in - 1)
    frac = src - left
    rows = torch.arange(n_out)
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    weights.index_put_((rows, left), 1 - frac, accumulate=True)
    weights.index_put_((rows, right), frac, accumulate=True)
    return weights


def interpolation_matrix(n_in: int, n_out: int, like: torch.Tensor) -> torch.Tensor:
    """The ``[n_out, n_in]`` bilinear weights along one axis, in ``like``'s dtype and device."""
    return _weights(n_in, n_out).to(like.device, like.dtype)


def bilinear_matmul(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x`` ``[B, C, h, w]`` resized to ``size`` as bilinear interpolation (align_corners=False)."""
    rows = interpolation_matrix(x.shape[-2], size[0], x)
    cols = interpolation_matrix(x.shape[-1], size[1], x)
    return torch.matmul(rows, torch.matmul(x, cols.T))


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``[B, K, h, w]`` logits to ``size``: matrices under autograd, else ``F.interpolate``."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    if torch.is_grad_enabled() and logits.requires_grad and logits.device.type == "cpu":
        return bilinear_matmul(logits, size)
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
