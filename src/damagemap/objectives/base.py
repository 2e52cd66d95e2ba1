"""Objective terms: ``term(output, batch) -> scalar``, composed with weights from the recipe."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

if TYPE_CHECKING:
    from damagemap.recipe import Recipe


@dataclass
class ForwardOutput:
    """Everything a training step produced that an objective term may look at.

    Attributes:
        logits: ``[B, K, H, W]`` at input size (K = 1 for binary heads).
        embedding: the head's last feature map ``[B, E, h, w]`` (before the classifier).
        features: the frozen encoder's feature maps (possibly augmented consistently with
            the masks), one per stride.
    """

    logits: torch.Tensor
    embedding: torch.Tensor
    features: list[torch.Tensor]


Batch = dict[str, torch.Tensor]
"""A training batch: ``"mask"`` int64 ``[B,H,W]`` (255 = ignore); optional ``"buildings"``
``[B,H,W]`` (1 = building footprint)."""


class ObjectiveTerm(nn.Module):
    """One loss term. Subclasses implement ``forward(output, batch) -> scalar tensor``."""

    def forward(self, output: ForwardOutput, batch: Batch) -> torch.Tensor:  # pragma: no cover
        """The term's value for one batch."""
        raise NotImplementedError


class WeightedSum(nn.Module):
    """Σ weight_i · term_i; also returns the individual values for logging."""

    def __init__(self, terms: dict[str, tuple[float, ObjectiveTerm]]) -> None:
        super().__init__()
        self.weights = {name: float(w) for name, (w, _) in terms.items()}
        self.terms = nn.ModuleDict({name: term for name, (_, term) in terms.items()})

    def forward(self, output: ForwardOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted total and each term's (unweighted) value."""
        total = output.logits.new_zeros(())
        parts: dict[str, float] = {}
        for name, term in self.terms.items():
            value = term(output, batch)
            parts[name] = float(value.detach())
            total = total + self.weights[name] * value
        return total, parts


class LabelledFeatures(Protocol):
    """A training item as term builders see it: encoder maps and the mask at input size."""

    features: list[torch.Tensor]
    mask: torch.Tensor


@dataclass
class ObjectiveContext:
    """What a term builder may need: the recipe, the source training items, encoder channels.

    ``state`` holds tensors a term needs again at load time (e.g. the PC projection and
    prototypes), saved in the model artifact; a builder given a ``state`` that already holds its
    tensors (a trained model's) rebuilds the term from them instead of from ``train_items``.
    ``notes`` collects documented fallbacks taken while building (recorded in the model's metrics).
    ``has_buildings`` tells terms that use footprints (DPT) whether the data has them.
    ``class_weights`` are the per-class weights of the supervised terms, if the recipe asks.
    """

    recipe: Recipe
    train_items: Sequence[LabelledFeatures]
    encoder_channels: tuple[int, ...]
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    has_buildings: bool | None = None
    class_weights: list[float] | None = None
    """Per-class loss weights resolved from ``train.class_weights`` (``focal`` and ``ce`` use them)."""
    """Whether every training item carries a building-footprint mask (``None``: unknown)."""


TermBuilder = Callable[[ObjectiveContext, dict], "ObjectiveTerm | None"]
"""Builds a recipe term from its options; returns ``None`` to skip it (after adding a note)."""
