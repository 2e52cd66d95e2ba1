"""Rare-class levers: loss class weights and the balanced sampler.

``train.class_weights`` and ``train.sampler: balanced``, both computed from the training items'
label masks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from damagemap.recipe import Recipe
from damagemap.types import IGNORE_INDEX


def _class_counts(mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pixels of each class in ``mask`` (255 and out-of-range values are not counted)."""
    flat = mask.reshape(-1).long()
    flat = flat[(flat != IGNORE_INDEX) & (flat >= 0) & (flat < num_classes)]
    return torch.bincount(flat, minlength=num_classes).double()


def class_shares(masks: Sequence[torch.Tensor], num_classes: int) -> torch.Tensor:
    """Share of each class among the labelled pixels of ``masks`` (zeros if none is labelled)."""
    total = torch.zeros(num_classes, dtype=torch.float64)
    for m in masks:
        total += _class_counts(m, num_classes)
    return total / total.sum().clamp_min(1)


def auto_class_weights(shares: torch.Tensor) -> list[float]:
    """``1/√share`` per class, scaled so the mean weight per labelled pixel is 1.

    A class with no labelled pixel gets the largest weight of the others (it cannot occur in
    this training split, so the value only matters for the record).
    """
    present = shares > 0
    if not present.any():
        return [1.0] * len(shares)
    w = torch.zeros_like(shares)
    w[present] = shares[present].rsqrt()
    w = w / (shares * w).sum()
    w[~present] = w[present].max()
    return [round(float(v), 6) for v in w]


def resolve_class_weights(recipe: Recipe, masks: Sequence[torch.Tensor]) -> list[float] | None:
    """The loss class weights of ``recipe`` (``train.class_weights``) for training ``masks``."""
    setting = recipe.train.class_weights
    if setting == "none":
        return None
    if setting == "auto":
        return auto_class_weights(class_shares(masks, len(recipe.classes)))
    return [float(v) for v in setting]


def balanced_weights(masks: Sequence[torch.Tensor], num_classes: int) -> torch.Tensor:
    """Sampling weight of each view: Σ_c (its share of class c) / (class c's share overall).

    A view that is all background weighs about 1, one whose pixels are all of a class covering
    1 % of the training pixels about 100. Views without labelled pixels weigh 0; if every view
    weighs 0 all weigh 1.
    """
    counts = [_class_counts(m, num_classes) for m in masks]
    total = torch.stack(counts).sum(0) if counts else torch.zeros(num_classes, dtype=torch.float64)
    overall = total / total.sum().clamp_min(1)
    present = overall > 0
    weights = torch.zeros(len(masks), dtype=torch.float64)
    for i, c in enumerate(counts):
        if c.sum() > 0:
            weights[i] = ((c / c.sum())[present] / overall[present]).sum()
    return weights if weights.sum() > 0 else torch.ones(len(masks), dtype=torch.float64)


def epoch_order(n: int, generator: torch.Generator, weights: torch.Tensor | None = None) -> list[int]:
    """Indices of one epoch: a permutation, or ``n`` weighted draws with replacement."""
    if weights is None:
        return torch.randperm(n, generator=generator).tolist()
    return torch.multinomial(weights, n, replacement=True, generator=generator).tolist()
