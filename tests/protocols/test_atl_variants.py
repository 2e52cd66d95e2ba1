"""ATL ablation variants: placement × residual; a recipe they cannot apply to is refused."""

import pytest

from damagemap.errors import ConfigError
from damagemap.protocols.variants import ATL_VARIANTS, expand_variants
from damagemap.recipe import Recipe, TermConfig


def test_atl_variants_set_placement_and_residual_and_leave_others_alone() -> None:
    atl = Recipe.model_validate({"name": "tls", "atl": {"prompt_reduction": 16}})
    out = expand_variants([atl], ["atl-prompt", "atl-prompt-nores", "atl-block", "atl-block-nores"])
    names = [r.name for r in out]
    assert names == ["tls-atl-prompt", "tls-atl-prompt-nores", "tls-atl-block", "tls-atl-block-nores"]
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


def test_a_variant_that_cannot_apply_is_refused_never_run_plain() -> None:
    st = Recipe(name="st", objectives={"focal": TermConfig(), "pc": TermConfig(weight=0.01)})
    with pytest.raises(ConfigError, match=r"'atl-block' needs a ViT encoder.*'st' uses 'efficientnet-lite0'"):
        expand_variants([st], ["plain", "atl-block"])  # st's encoder is a CNN
    with pytest.raises(ConfigError, match="unknown variant"):
        expand_variants([st], ["atl-sideways"])
    grades = Recipe(name="g", classes=["bg", "minor", "major"], damage_classes=[1, 2], objectives={"ce": TermConfig()})
    with pytest.raises(ConfigError, match=r"'pc' needs a binary recipe .*; recipe 'g' has 3 classes"):
        expand_variants([grades], ["plain", "pc"])


def test_a_vit_recipe_without_atl_gets_the_default_section() -> None:
    vit = Recipe.model_validate({"name": "v", "encoder": {"name": "dinov3-vits16"}})
    out = expand_variants([vit], ["atl-prompt", "atl-block-nores"])
    assert [(r.name, r.atl.placement, r.atl.residual) for r in out] == [
        ("v-atl-prompt", "prompt", True),
        ("v-atl-block-nores", "block", False),
    ]
