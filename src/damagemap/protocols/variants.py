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


ATL_VARIANTS = {
    "atl-prompt": (True, "prompt", True),
    "atl-prompt-nores": (True, "prompt", False),
    "atl-block": (True, "block", True),
    "atl-block-nores": (True, "block", False),
    "atl-off": (False, "prompt", True),
}
"""ATL ablation (TransLandSeg): placement × residual, and ``atl-off`` (frozen encoder, decoder only)."""


def variant_applies(recipe: Recipe, variant: str) -> bool:
    """Whether ``variant`` varies ``recipe``.

    ATL variants vary recipes with an ``atl:`` section; PC/DPT variants vary recipes with PC/DPT
    terms. Other recipes run once, as they are.
    """
    if variant in ATL_VARIANTS:
        return recipe.atl is not None
    if variant in VARIANTS:
        return uses_transfer_terms(recipe)
    known = ", ".join([*VARIANTS, *ATL_VARIANTS])
    raise ConfigError(f"unknown variant {variant!r}; choose from {known}")


def atl_variant(recipe: Recipe, variant: str) -> Recipe:
    """A copy of ``recipe`` with the ATL placement / residual of ``variant``.

    Named ``<recipe>-<variant>``; other ATL options are kept.
    """
    enabled, placement, residual = ATL_VARIANTS[variant]
    if recipe.atl is None:
        raise ConfigError(f"ATL variant {variant!r} needs a recipe with an atl: section; {recipe.name} has none")
    atl = recipe.atl.model_copy(update={"enabled": enabled, "placement": placement, "residual": residual})
    return recipe.model_copy(update={"name": f"{recipe.name}-{variant}", "atl": atl}, deep=True)


def expand_variants(recipes: list[Recipe], variants: list[str]) -> list[Recipe]:
    """Every recipe as each variant that applies to it; recipes no variant applies to, once."""
    out: list[Recipe] = []
    for r in recipes:
        chosen = [v for v in variants if variant_applies(r, v)]
        out += [atl_variant(r, v) if v in ATL_VARIANTS else recipe_variant(r, v) for v in chosen] or [r]
    return out
