"""Transfer-strategy variants of a recipe: plain, pc, dpt, pc+dpt (for ablation runs)."""

from __future__ import annotations

from damagemap.errors import ConfigError
from damagemap.recipe import Recipe, TermConfig

STRATEGY_TERMS = ("pc", "dpt")
DEFAULT_TERMS = {
    "pc": TermConfig(weight=0.01),
    "dpt": TermConfig(weight=0.001, options={"form": "reference"}),
}
VARIANTS = ("plain", "pc", "dpt", "pc+dpt", "dpt-adjacency", "pc+dpt-adjacency")


def uses_transfer_terms(recipe: Recipe) -> bool:
    """Whether the recipe has a PC or DPT term (baselines don't, and aren't varied)."""
    return any(k in STRATEGY_TERMS and t.weight != 0 for k, t in recipe.objectives.items())


def recipe_variant(recipe: Recipe, variant: str) -> Recipe:
    """A copy of ``recipe`` whose transfer terms are exactly those named by ``variant``.

    ``plain`` drops PC and DPT; ``pc``/``dpt``/``pc+dpt`` keep (or add, with the paper's
    weights λ_pc 0.01, λ_dpt 0.001) the named ones; a ``-adjacency`` suffix switches DPT to the
    adjacency-weighted margin. The copy is named ``<recipe>-<variant>``.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    wanted = set(variant.replace("-adjacency", "").split("+")) - {"plain"}
    objectives = {k: v for k, v in recipe.objectives.items() if k not in STRATEGY_TERMS}
    for term in sorted(wanted):
        cfg = recipe.objectives.get(term)
        cfg = cfg if cfg is not None and cfg.weight != 0 else DEFAULT_TERMS[term]
        objectives[term] = cfg.model_copy(deep=True)
    if variant.endswith("-adjacency"):
        objectives["dpt"].options["form"] = "adjacency"
    return recipe.model_copy(update={"name": f"{recipe.name}-{variant}", "objectives": objectives}, deep=True)
