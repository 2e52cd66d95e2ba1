"""Multi-class cross-entropy that ignores 255 and never returns NaN."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from damagemap.errors import ConfigError
from damagemap.objectives.base import Batch, ForwardOutput, ObjectiveContext, ObjectiveTerm
from damagemap.types import IGNORE_INDEX


class CrossEntropyLoss(ObjectiveTerm):
    """Softmax cross-entropy over K ≥ 2 channels, weighted mean over non-ignored pixels.

    Equals :func:`torch.nn.functional.cross_entropy` with ``ignore_index=255`` (the mean is
    ``Σ w_{y_i} l_i / Σ w_{y_i}`` with class weights), except that a batch with every pixel
    ignored gives 0 instead of NaN.

    Args:
        class_weights: optional per-class weights (length K).
    """

    weight: torch.Tensor | None

    def __init__(self, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, output: ForwardOutput, batch: Batch) -> torch.Tensor:
        """Weighted mean cross-entropy over non-ignored pixels."""
        logits, mask = output.logits, batch["mask"]
        if logits.ndim != 4 or logits.shape[1] < 2:
            raise ValueError(
                f"cross-entropy needs logits [B,K,H,W] with K >= 2, got {tuple(logits.shape)}; "
                "use BinaryFocalLoss or DiceLoss for 1-channel heads"
            )
        weight = None if self.weight is None else self.weight.to(logits.dtype)
        loss = F.cross_entropy(logits, mask, weight, ignore_index=IGNORE_INDEX, reduction="sum")
        valid = mask != IGNORE_INDEX
        denom = valid.sum().to(logits.dtype) if weight is None else weight[mask[valid]].sum()
        return loss / denom.clamp_min(torch.finfo(logits.dtype).tiny)


def build_cross_entropy(ctx: ObjectiveContext, options: dict) -> ObjectiveTerm:
    """Recipe term ``ce`` (multi-class recipes only)."""
    if ctx.recipe.binary:
        raise ConfigError("objective 'ce' needs a multi-class recipe; binary recipes use 'focal'")
    if ctx.class_weights is not None:
        if "class_weights" in options:
            raise ConfigError("ce: class weights given twice (train.class_weights and objectives.ce.options)")
        options = {**options, "class_weights": ctx.class_weights}
    return CrossEntropyLoss(**options)
