"""ATL ablation variants: placement × residual, expanded only for recipes with an ``atl:`` section."""

import pytest

from damagemap.errors import ConfigError
from damagemap.protocols.variants import ATL_VARIANTS, expand_variants
from damagemap.recipe import Recipe, TermConfig


def test_atl_variants_set_placement_and_residual_and_leave_others_alone() -> None:
    atl = Recipe.model_validate({"name": "tls", "atl": {"prompt_reduction": 16}})
    plain = Recipe(name="base")
    st = Recipe(name="st", objectives={"focal": TermConfig(), "pc": TermConfig(weight=0.01)})
    out = expand_variants([atl, plain, st], ["atl-prompt", "atl-prompt-nores", "atl-block", "atl-block-nores"])
    names = [r.name for r in out]
    assert names == ["tls-atl-prompt", "tls-atl-prompt-nores", "tls-atl-block", "tls-atl-block-nores", "base", "st"]
    got = {r.name: (r.atl.placement, r.atl.residual, r.atl.prompt_reduction) for r in out[:4]}
    assert got == {
        "tls-atl-prompt": ("prompt", True, 16),
        "tls-atl-prompt-nores": ("prompt", False, 16),
        "tls-atl-block": ("block", True, 16),
        "tls-atl-block-nores": ("block", False, 16),
    }
    off = expand_variants([atl], ["atl-off"])[0]
    assert off.atl.enabled is False and atl.atl.enabled  # the original is untouched
    assert set(ATL_VARIANTS) >= {"atl-prompt", "atl-block-nores", "atl-off"}


def test_mixed_variant_lists_and_unknown_names() -> None:
    st = Recipe(name="st", objectives={"focal": TermConfig(), "pc": TermConfig(weight=0.01)})
    out = expand_variants([st], ["plain", "atl-block"])  # the ATL variant does not apply to st
    assert [r.name for r in out] == ["st-plain"]
    with pytest.raises(ConfigError, match="unknown variant"):
        expand_variants([st], ["atl-sideways"])
