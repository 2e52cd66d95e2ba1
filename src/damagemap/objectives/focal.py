"""Binary focal loss on 1-channel logits (Smart Transfer's segmentation loss)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import sigmoid_focal_loss

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
    positives = torch.as_tensor(list(positive_classes), device=mask.device)
    target = torch.isin(mask, positives).to(logits.dtype)
    return target, mask != IGNORE_INDEX


def masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``valid`` elements; 0 (still differentiable) when none is valid."""
    total = torch.where(valid, values, values.new_zeros(())).sum()
    return total / valid.sum().clamp_min(1)


class BinaryFocalLoss(ObjectiveTerm):
    """Sigmoid focal loss (Lin et al. 2017) averaged over non-ignored pixels.

    Per pixel: ``-α_t (1 - p_t)^γ log p_t`` with ``α_t = α`` for positive pixels and ``1 - α``
    for negative ones — the convention of :func:`torchvision.ops.sigmoid_focal_loss`, which is
    used internally. Smart Transfer uses α = 0.7, γ = 2 (α > 0.5 up-weights the damage class).

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
        loss = sigmoid_focal_loss(output.logits, target, self.alpha, self.gamma, reduction="none")
        if self.class_weights is None:
            return masked_mean(loss, valid)
        neg, pos = self.class_weights
        w = torch.where(valid, neg + (pos - neg) * target, target.new_zeros(()))
        return (loss * w).sum() / w.sum().clamp_min(torch.finfo(loss.dtype).tiny)


def build_focal(ctx: ObjectiveContext, options: dict) -> ObjectiveTerm:
    """Recipe term ``focal`` (binary recipes only)."""
    if not ctx.recipe.binary:
        raise ConfigError("objective 'focal' is binary; use 'ce' and/or 'dice' for multi-class recipes")
    if ctx.class_weights is not None:
        if "class_weights" in options:
            raise ConfigError("focal: class weights given twice (train.class_weights and objectives.focal.options)")
        options = {**options, "class_weights": ctx.class_weights}
    return BinaryFocalLoss(**options)
