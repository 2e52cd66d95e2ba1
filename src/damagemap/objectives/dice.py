"""Soft Dice loss: binary on sigmoid (1-channel logits), multi-class on softmax."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from damagemap.objectives.base import Batch, ForwardOutput, ObjectiveContext, ObjectiveTerm
from damagemap.objectives.focal import binary_target
from damagemap.types import IGNORE_INDEX


class DiceLoss(ObjectiveTerm):
    """``1 - mean_k (2 Σ p_k t_k + s) / (Σ p_k + Σ t_k + s)`` over non-ignored pixels.

    Sums run over the whole batch (not per image). With 1-channel logits the only class is the
    positive one (``positive_classes`` of the mask) and ``p = sigmoid(logits)``; with K ≥ 2
    channels ``p = softmax(logits)`` and every class, background included, is averaged. A class
    absent from the target contributes ``s / (Σ p_k + s)``, i.e. it is rewarded for predicting
    nothing. A batch with every pixel ignored gives 0.

    Args:
        smooth: additive smoothing ``s`` (> 0).
        positive_classes: mask values counted as positive for binary (1-channel) logits.
    """

    def __init__(self, smooth: float = 1.0, positive_classes: Sequence[int] = (1,)) -> None:
        super().__init__()
        if smooth <= 0:
            raise ValueError(f"dice smooth must be > 0, got {smooth}")
        self.smooth = float(smooth)
        self.positive_classes = tuple(int(c) for c in positive_classes)

    def forward(self, output: ForwardOutput, batch: Batch) -> torch.Tensor:
        """Soft Dice loss of the batch."""
        logits, mask = output.logits, batch["mask"]
        if logits.shape[1] == 1:
            target, valid = binary_target(logits, mask, self.positive_classes)
            probs = torch.sigmoid(logits)
        else:
            valid = (mask != IGNORE_INDEX).unsqueeze(1)
            labels = torch.where(valid.squeeze(1), mask, torch.zeros_like(mask))
            target = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
            probs = torch.softmax(logits, dim=1)
        probs = torch.where(valid, probs, probs.new_zeros(()))
        target = target * valid
        dims = (0, 2, 3)
        intersection = (probs * target).sum(dims)
        dice = (2 * intersection + self.smooth) / (probs.sum(dims) + target.sum(dims) + self.smooth)
        return 1 - dice.mean()


def build_dice(ctx: ObjectiveContext, options: dict) -> ObjectiveTerm:
    """Recipe term ``dice``."""
    return DiceLoss(**options)
