"""Attach the adapter modules a recipe asks for (its ``atl:`` section) to a built encoder."""

from __future__ import annotations

import copy

from damagemap.adapters.registry import attach_adapter
from damagemap.encoders.base import Encoder
from damagemap.recipe import Recipe


def attach_recipe_adapters(encoder: Encoder, recipe: Recipe, copy_first: bool = False) -> Encoder:
    """``encoder`` with the recipe's trainable adapter modules attached (ATL when ``atl.enabled``).

    With ``copy_first`` the modules go on a deep copy, leaving a shared ``encoder`` untouched.
    Without any adapter in the recipe, ``encoder`` is returned as it is.
    """
    wanted = []
    if recipe.atl is not None and recipe.atl.enabled:
        wanted.append(("atl", recipe.atl.options()))
    if not wanted:
        return encoder
    if copy_first:
        encoder = copy.deepcopy(encoder)
    for kind, options in wanted:
        attach_adapter(encoder, kind, options)
    return encoder
