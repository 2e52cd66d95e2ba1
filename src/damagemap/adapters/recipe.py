"""The adapters a recipe asks for, attached to a built encoder before training.

* ``band_adapter`` — when an RGB encoder is fed more than 3 bands (``input.bands``, or every
  band of the samples), its first conv keeps the RGB filters on ``input.rgb`` and gains a
  trainable conv for the other bands (:mod:`damagemap.adapters.band`);
* ``atl`` — when the recipe has an enabled ``atl:`` section (:mod:`damagemap.adapters.atl`);
* ``finetune`` — when ``encoder.finetune`` is true (:mod:`damagemap.adapters.finetune`). It is
  attached last: it makes every parameter present trainable, the other kinds' included.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from damagemap.adapters.registry import attach_adapter
from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError
from damagemap.recipe import InputConfig, Recipe
from damagemap.types import Sample


def rgb_positions(cfg: InputConfig) -> list[int]:
    """Positions of R, G, B in the encoder input.

    ``cfg.rgb`` looked up in ``cfg.bands`` (default: the first three selected bands).
    """
    if cfg.rgb is None:
        return [0, 1, 2]
    bands = cfg.bands
    if bands is None:
        return list(cfg.rgb)
    missing = [b for b in cfg.rgb if b not in bands]
    if missing:
        raise ConfigError(f"input.rgb {cfg.rgb}: band(s) {missing} are not among input.bands {bands}")
    return [bands.index(b) for b in cfg.rgb]


def recipe_adapters(encoder: Encoder, recipe: Recipe, samples: Sequence[Sample]) -> list[tuple[str, dict]]:
    """``(kind, options)`` of every adapter the recipe needs on ``encoder``, in attach order."""
    cfg = recipe.input
    wanted: list[tuple[str, dict]] = []
    n_bands = len(cfg.bands) if cfg.bands is not None else (samples[0].image.shape[0] if samples else 0)
    if encoder.in_chans == 3 and n_bands > 3:
        wanted.append(("band_adapter", {"in_chans": n_bands, "rgb": rgb_positions(cfg), "init": "zeros"}))
    if recipe.atl is not None and recipe.atl.enabled:
        wanted.append(("atl", recipe.atl.options()))
    if recipe.encoder.finetune:
        wanted.append(("finetune", {}))
    return wanted


def attach_recipe_adapters(
    encoder: Encoder, recipe: Recipe, samples: Sequence[Sample] = (), copy_first: bool = False
) -> Encoder:
    """``encoder`` with the recipe's trainable adapters attached (see the module docstring).

    With ``copy_first`` they go on a deep copy, leaving a shared ``encoder`` untouched. Without
    any adapter to attach, ``encoder`` itself is returned.
    """
    wanted = recipe_adapters(encoder, recipe, samples)
    if not wanted:
        return encoder
    if copy_first:
        encoder = copy.deepcopy(encoder)
    for kind, options in wanted:
        attach_adapter(encoder, kind, options)
    return encoder
