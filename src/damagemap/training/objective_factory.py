"""Build the recipe's weighted objective from its term names and options."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from damagemap.errors import ConfigError
from damagemap.objectives.base import ObjectiveTerm, WeightedSum
from damagemap.recipe import Recipe
from damagemap.training.fit import Item


@dataclass
class ObjectiveContext:
    """What a term builder may need: the recipe, the source training items, encoder channels."""

    recipe: Recipe
    train_items: Sequence[Item]
    encoder_channels: tuple[int, ...]
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    """Tensors a term needs again at load time (e.g. PC projection); saved in the artifact."""
    notes: list[str] = field(default_factory=list)
    """Documented fallbacks taken while building terms (recorded in the model's metrics)."""


TermBuilder = Callable[[ObjectiveContext, dict], "ObjectiveTerm | None"]
"""Returns the term, or ``None`` to skip it (after appending the reason to ``ctx.notes``)."""
_BUILDERS: dict[str, TermBuilder] = {}


def register_term(name: str) -> Callable[[TermBuilder], TermBuilder]:
    """Decorator registering a term builder under a recipe name."""

    def deco(fn: TermBuilder) -> TermBuilder:
        _BUILDERS[name] = fn
        return fn

    return deco


@register_term("focal")
def _focal(ctx: ObjectiveContext, options: dict) -> ObjectiveTerm:
    from damagemap.objectives.focal import BinaryFocalLoss

    if not ctx.recipe.binary:
        raise ConfigError("objective 'focal' is binary; use 'ce' and/or 'dice' for multi-class recipes")
    return BinaryFocalLoss(**options)


@register_term("dice")
def _dice(ctx: ObjectiveContext, options: dict) -> ObjectiveTerm:
    from damagemap.objectives.dice import DiceLoss

    return DiceLoss(**options)


@register_term("ce")
def _ce(ctx: ObjectiveContext, options: dict) -> ObjectiveTerm:
    from damagemap.objectives.cross_entropy import CrossEntropyLoss

    if ctx.recipe.binary:
        raise ConfigError("objective 'ce' needs a multi-class recipe; binary recipes use 'focal'")
    return CrossEntropyLoss(**options)


def _load_plugins() -> None:
    # Transfer-strategy terms (PC, DPT) register themselves when their module is importable.
    try:
        import damagemap.training.transfer_terms  # noqa: F401
    except ImportError:
        pass


def build_objective(ctx: ObjectiveContext) -> WeightedSum:
    """The weighted sum of every term with a non-zero weight in the recipe."""
    _load_plugins()
    terms: dict[str, tuple[float, ObjectiveTerm]] = {}
    for name, term in ctx.recipe.objectives.items():
        if term.weight == 0:
            continue
        if name not in _BUILDERS:
            raise ConfigError(f"unknown objective {name!r}; known: {', '.join(sorted(_BUILDERS))}")
        try:
            built = _BUILDERS[name](ctx, dict(term.options))
        except TypeError as exc:
            raise ConfigError(f"objective {name!r}: bad options {term.options} ({exc})") from None
        if built is not None:
            terms[name] = (term.weight, built)
    if not terms:
        raise ConfigError("the recipe has no objective with a non-zero weight")
    return WeightedSum(terms)
