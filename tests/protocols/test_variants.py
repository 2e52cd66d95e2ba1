import pytest

from damagemap.errors import ConfigError
from damagemap.protocols.variants import recipe_variant, uses_transfer_terms
from damagemap.recipe import Recipe, TermConfig


def _recipe() -> Recipe:
    return Recipe(
        name="st",
        objectives={
            "focal": TermConfig(),
            "pc": TermConfig(weight=0.05),
            "dpt": TermConfig(weight=0.002, options={"form": "reference"}),
        },
    )


def test_variants_keep_exactly_the_named_terms_with_recipe_weights() -> None:
    r = _recipe()
    assert set(recipe_variant(r, "plain").objectives) == {"focal"}
    pc = recipe_variant(r, "pc")
    assert set(pc.objectives) == {"focal", "pc"} and pc.objectives["pc"].weight == 0.05
    both = recipe_variant(r, "pc+dpt-adjacency")
    assert both.name == "st-pc+dpt-adjacency"
    assert both.objectives["dpt"].options["form"] == "adjacency"
    assert r.objectives["dpt"].options["form"] == "reference"  # the original is untouched


def test_missing_terms_get_paper_weights_and_baselines_are_not_varied() -> None:
    plain = Recipe(name="b")
    assert not uses_transfer_terms(plain) and uses_transfer_terms(_recipe())
    assert recipe_variant(plain, "dpt").objectives["dpt"].weight == 0.001
    with pytest.raises(ConfigError, match="unknown variant"):
        recipe_variant(plain, "pcdpt")


def test_variants_always_produce_what_their_names_say() -> None:
    """A focal-only recipe (today's smart_transfer.yaml bug) run as plain,pc,dpt,pc+dpt gives four
    models whose objectives are exactly those named, at the paper's weights."""
    from damagemap.protocols.variants import expand_variants

    focal_only = Recipe(name="st", objectives={"focal": TermConfig(options={"alpha": 0.7, "gamma": 2.0})})
    out = expand_variants([focal_only], ["plain", "pc", "dpt", "pc+dpt"])
    got = {r.name: {k: v.weight for k, v in r.objectives.items()} for r in out}
    assert got == {
        "st-plain": {"focal": 1.0},
        "st-pc": {"focal": 1.0, "pc": 0.01},
        "st-dpt": {"focal": 1.0, "dpt": 0.001},
        "st-pc+dpt": {"focal": 1.0, "pc": 0.01, "dpt": 0.001},
    }
