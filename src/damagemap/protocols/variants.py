"""Variants of a recipe for side-by-side runs: strategies, ATL placements and recipe keys.

Transfer strategies (plain, pc, dpt, pc+dpt), ATL placements, and any recipe keys
(``eval.tta=flip``, ``encoder.levels=[1,2,3,4,5]``).

A variant is a named variant, ``key=value`` overrides, or a named variant followed by overrides,
joined by ``+``: ``plain+eval.tta=flip+train.sampler=balanced``.
"""

from __future__ import annotations

from damagemap.errors import ConfigError
from damagemap.recipe import ATLConfig, Recipe, TermConfig, apply_overrides

STRATEGY_TERMS = ("pc", "dpt")
DEFAULT_TERMS = {
    "pc": TermConfig(weight=0.01),
    "dpt": TermConfig(weight=0.001, options={"form": "reference"}),
}
VARIANTS = ("plain", "pc", "dpt", "pc+dpt", "dpt-adjacency", "pc+dpt-adjacency")


def uses_transfer_terms(recipe: Recipe) -> bool:
    """Whether the recipe has a PC or DPT term with a non-zero weight."""
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


VIT_FAMILIES = ("dinov2", "dinov3", "sam")
"""Encoder families ATL can be attached to."""


def _check_applies(recipe: Recipe, variant: str) -> None:
    """Refuse, naming recipe and variant, a variant that cannot mean what its name says."""
    if variant in ATL_VARIANTS:
        from damagemap.encoders import ENCODERS

        spec = ENCODERS.get(recipe.encoder.name)
        if recipe.atl is None and (spec is None or spec.family not in VIT_FAMILIES):
            raise ConfigError(
                f"variant {variant!r} needs a ViT encoder (SAM, DINOv2, DINOv3) for ATL; recipe "
                f"{recipe.name!r} uses {recipe.encoder.name!r} — run it without ATL variants"
            )
    elif variant in VARIANTS:
        if variant != "plain" and not recipe.binary:
            raise ConfigError(
                f"variant {variant!r} needs a binary recipe (PC and DPT are damaged / not damaged); "
                f"recipe {recipe.name!r} has {len(recipe.classes)} classes"
            )
    else:
        known = ", ".join([*VARIANTS, *ATL_VARIANTS])
        raise ConfigError(f"unknown variant {variant!r}; choose from {known}")


def atl_variant(recipe: Recipe, variant: str) -> Recipe:
    """A copy of ``recipe`` with the ATL placement / residual of ``variant``.

    Named ``<recipe>-<variant>``; other ATL options are kept (a recipe without an ``atl:``
    section gets the default one).
    """
    enabled, placement, residual = ATL_VARIANTS[variant]
    atl = (recipe.atl or ATLConfig()).model_copy(
        update={"enabled": enabled, "placement": placement, "residual": residual}
    )
    return recipe.model_copy(update={"name": f"{recipe.name}-{variant}", "atl": atl}, deep=True)


def split_variants(text: str) -> list[str]:
    """``a,b=[1,2],c`` → ``["a", "b=[1,2]", "c"]``: commas inside brackets or braces do not split."""
    out, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth <= 0:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    out.append(current.strip())
    return [v for v in out if v]


def variant_parts(variant: str) -> tuple[str | None, list[str]]:
    """The named variant (``None`` if there is none) and the ``key=value`` overrides of ``variant``.

    Parts are joined by ``+``; the named part comes first. A ``+`` inside an override's value
    (``train.lr=1e+3``) stays in the value.
    """
    parts: list[str] = []
    for piece in variant.split("+"):
        if parts and "=" in parts[-1] and "=" not in piece:
            parts[-1] += "+" + piece
        else:
            parts.append(piece)
    named = [p for p in parts if "=" not in p]  # only before the first override (later ones join its value)
    overrides = [p for p in parts if "=" in p]
    return ("+".join(named) or None), overrides


def _apply_variant(recipe: Recipe, variant: str) -> Recipe:
    named, overrides = variant_parts(variant)
    out = recipe
    if named is not None:
        out = atl_variant(recipe, named) if named in ATL_VARIANTS else recipe_variant(recipe, named)
    if overrides:
        try:
            out = apply_overrides(out, overrides)
        except ConfigError as exc:
            raise ConfigError(f"variant {variant!r}: {exc}") from None
    return out.model_copy(update={"name": f"{recipe.name}-{variant.replace('/', '_')}"})


def expand_variants(recipes: list[Recipe], variants: list[str]) -> list[Recipe]:
    """Every recipe as every variant, named ``<recipe>-<variant>`` — never a silent unvaried run.

    PC/DPT variants add the terms they name at the paper's weights when a recipe lacks them;
    ATL variants add a default ``atl:`` section to a ViT recipe. A variant that cannot apply to a
    recipe (PC/DPT on a multi-class recipe, ATL on a CNN encoder) is refused with a clear error
    before anything is trained. ``key=value`` parts (see :func:`variant_parts`) are recipe
    overrides applied after the named variant, validated like ``--set``.
    """
    for r in recipes:
        for v in variants:
            named, _ = variant_parts(v)
            if named is not None:
                _check_applies(r, named)
    out = [_apply_variant(r, v) for r in recipes for v in variants]
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"variants {variants} give recipes with the same name; name each variant once")
    return out
