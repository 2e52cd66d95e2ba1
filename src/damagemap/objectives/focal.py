"""Binary focal loss on 1-channel logits (Smart Transfer's segmentation loss)."""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn import functional as F

from damagemap.errors import ConfigError
from damagemap.objectives.base import Batch, ForwardOutput, ObjectiveContext, ObjectiveTerm
from damagemap.types import IGNORE_INDEX


def binary_target(
    logits: torch.Tensor, mask: torch.Tensor, positive_classes: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float target ``[B,1,H,W]`` (1 where ``mask`` is a positive class) and the valid-pixel mask.

    Raises:
        ValueError: ``logits`` is not ``[B,1,H,W]`` matching ``mask`` ``[B,H,W]``.
    """
    if logits.ndim != 4 or logits.shape[1] != 1 or logits.shape[-2:] != mask.shape[-2:]:
        raise ValueError(
            f"binary loss needs logits [B,1,H,W] and mask [B,H,W]; got logits "
            f"{tuple(logits.shape)}, mask {tuple(mask.shape)}"
        )
    mask = mask.unsqueeze(1)
    # one comparison per positive class: several times faster than torch.isin on a uint8 mask
    hits = [mask == c for c in positive_classes]
    hit = functools.reduce(operator.or_, hits) if hits else torch.zeros_like(mask, dtype=torch.bool)
    target = hit.to(logits.dtype)
    return target, mask != IGNORE_INDEX


class BinaryFocalLoss(ObjectiveTerm):
    """Sigmoid focal loss (Lin et al. 2017) averaged over non-ignored pixels.

    Per pixel: ``-α_t (1 - p_t)^γ log p_t`` with ``α_t = α`` for positive pixels and ``1 - α``
    for negative ones — the convention of :func:`torchvision.ops.sigmoid_focal_loss` (computed
    here with a closed-form gradient, :func:`focal_sum`). Smart Transfer uses α = 0.7, γ = 2
    (α > 0.5 up-weights the damage class).

    Args:
        alpha: weight of the positive class in [0, 1], or -1 for no class weighting.
        gamma: focusing exponent.
        positive_classes: mask values counted as positive (damaged); others except 255 are
            negative.
        class_weights: optional (negative, positive) pixel weights on top of ``alpha``
            (``train.class_weights``).
    """

    def __init__(
        self,
        alpha: float = 0.7,
        gamma: float = 2.0,
        positive_classes: Sequence[int] = (1,),
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if not (0 <= alpha <= 1 or alpha == -1) or gamma < 0:
            raise ValueError(f"focal loss needs alpha in [0,1] or -1 and gamma >= 0, got {alpha}, {gamma}")
        if class_weights is not None and len(class_weights) != 2:
            raise ValueError(f"binary focal loss takes 2 class weights (negative, positive), got {list(class_weights)}")
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.positive_classes = tuple(int(c) for c in positive_classes)
        self.class_weights = None if class_weights is None else tuple(float(w) for w in class_weights)

    def forward(self, output: ForwardOutput, batch: Batch) -> torch.Tensor:
        """Mean focal loss over non-ignored pixels (weighted mean ``Σ w l / Σ w`` with class weights)."""
        target, valid = binary_target(output.logits, batch["mask"], self.positive_classes)
        if self.class_weights is None:
            weight = valid.to(target.dtype)
            return focal_sum(output.logits, target, weight, self.alpha, self.gamma) / valid.sum().clamp_min(1)
        neg, pos = self.class_weights
        weight = torch.where(valid, neg + (pos - neg) * target, target.new_zeros(()))
        total = focal_sum(output.logits, target, weight, self.alpha, self.gamma)
        return total / weight.sum().clamp_min(torch.finfo(target.dtype).tiny)


class _FocalSum(torch.autograd.Function):
    """``Σ w · focal(x, t)`` with its closed-form gradient.

    With ``z = x`` for positives and ``-x`` for negatives, ``p_t = σ(z)``, ``q = 1 - p_t = σ(-z)``
    and the per-pixel loss is ``α_t q^γ softplus(-z)``; its derivative in ``z`` is
    ``-α_t q^γ (γ (1 - q) softplus(-z) + q)``. Autograd through the same formula (as
    :func:`torchvision.ops.sigmoid_focal_loss` plus the weighting) makes ~25 full-size passes
    over the pixels; this makes about a third of them, which matters because these passes are
    memory-bound at the logits' full resolution.
    """

    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, alpha: float, gamma: float
    ) -> torch.Tensor:
        sign = target * 2 - 1
        z = logits * sign
        q = torch.sigmoid(-z)
        nll = F.softplus(-z)  # -log p_t, stable for large |z|
        if alpha >= 0:
            weight = weight * (target * (2 * alpha - 1) + (1 - alpha))  # α for positives, 1 - α for negatives
        ctx.save_for_backward(q, nll, weight * sign)
        ctx.gamma = gamma
        return (weight * _power(q, gamma) * nll).sum()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, nll, signed_weight = ctx.saved_tensors
        gamma = ctx.gamma
        dz = _power(q, gamma) * (gamma * (1 - q) * nll + q)
        return -grad * signed_weight * dz, None, None, None, None


def _power(q: torch.Tensor, gamma: float) -> torch.Tensor:
    """``q ** gamma``, as plain products for the usual γ of 0, 1 and 2."""
    if gamma == 0:
        return torch.ones_like(q)
    if gamma == 1:
        return q
    if gamma == 2:
        return q * q
    return q.pow(gamma)


def focal_sum(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """``Σ weight · focal loss`` of logits against a 0/1 ``target`` (torchvision's α/γ convention)."""
    return _FocalSum.apply(logits, target, weight, alpha, gamma)


def build_focal(ctx: ObjectiveContext, options: dict) -> ObjectiveTerm:
    """Recipe term ``focal`` (binary recipes only)."""
    if not ctx.recipe.binary:
        raise ConfigError("objective 'focal' is binary; use 'ce' and/or 'dice' for multi-class recipes")
    if ctx.class_weights is not None:
        if "class_weights" in options:
            raise ConfigError("focal: class weights given twice (train.class_weights and objectives.focal.options)")
        options = {**options, "class_weights": ctx.class_weights}
    return BinaryFocalLoss(**options)
