"""The objective registry: recipe term name → builder, and the weighted sum of a recipe's terms."""

from __future__ import annotations

from damagemap.errors import ConfigError
from damagemap.objectives.base import ObjectiveContext, ObjectiveTerm, TermBuilder, WeightedSum
from damagemap.objectives.cross_entropy import build_cross_entropy
from damagemap.objectives.dice import build_dice
from damagemap.objectives.dpt import build_dpt
from damagemap.objectives.focal import build_focal
from damagemap.objectives.pc import build_pc

OBJECTIVES: dict[str, TermBuilder] = {
    "focal": build_focal,
    "dice": build_dice,
    "ce": build_cross_entropy,
    "pc": build_pc,
    "dpt": build_dpt,
}
"""Builder of each objective term a recipe can name under ``objectives:``."""


def build_objective(ctx: ObjectiveContext) -> WeightedSum:
    """The weighted sum of every term with a non-zero weight in the recipe."""
    terms: dict[str, tuple[float, ObjectiveTerm]] = {}
    for name, term in ctx.recipe.objectives.items():
        if term.weight == 0:
            continue
        if name not in OBJECTIVES:
            raise ConfigError(f"unknown objective {name!r}; known: {', '.join(sorted(OBJECTIVES))}")
        try:
            built = OBJECTIVES[name](ctx, dict(term.options))
        except TypeError as exc:
            raise ConfigError(f"objective {name!r}: bad options {term.options} ({exc})") from None
        if built is not None:
            terms[name] = (term.weight, built)
    if not terms:
        raise ConfigError("the recipe has no objective with a non-zero weight")
    return WeightedSum(terms)
