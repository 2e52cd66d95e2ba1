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


def test_override_variants_split_name_and_hash_apart() -> None:
    from damagemap.protocols.runner import _config_hash
    from damagemap.protocols.splits import Fold
    from damagemap.protocols.variants import expand_variants, split_variants

    given = "plain,eval.tta=flip,encoder.levels=[1,2,3,4,5],plain+train.sampler=balanced+train.lr=1e+3"
    names = split_variants(given)
    assert names == [
        "plain",
        "eval.tta=flip",
        "encoder.levels=[1,2,3,4,5]",
        "plain+train.sampler=balanced+train.lr=1e+3",
    ]
    out = {r.name: r for r in expand_variants([_recipe()], names)}
    assert list(out) == [f"st-{n}" for n in names]
    assert out["st-eval.tta=flip"].eval.tta == "flip" and "pc" in out["st-eval.tta=flip"].objectives  # recipe kept
    assert out["st-encoder.levels=[1,2,3,4,5]"].encoder.levels == [1, 2, 3, 4, 5]
    last = out[f"st-{names[-1]}"]
    assert set(last.objectives) == {"focal"} and last.train.sampler == "balanced" and last.train.lr == 1e3
    fold = Fold(name="f", train=["a"], val=[], test=["b"])
    assert len({_config_hash(r, fold) for r in out.values()}) == len(out)
    with pytest.raises(ConfigError, match="variant 'eval.tta=sometimes'"):
        expand_variants([_recipe()], ["eval.tta=sometimes"])
    with pytest.raises(ConfigError, match="variant 'eval.tta=flip\\+pc'"):  # named parts go first
        expand_variants([_recipe()], ["eval.tta=flip+pc"])


def test_new_default_keys_keep_earlier_fold_hashes() -> None:
    from damagemap.protocols.runner import _config_hash, config_hash
    from damagemap.protocols.splits import Fold

    r = _recipe()
    fold = Fold(name="f", train=["a"], val=[], test=["b"])
    dump = r.model_dump(mode="json")
    for key in ("fewshot", "atl", "eval", "scoring"):
        dump.pop(key)
    dump["encoder"].pop("levels")
    for key in ("scheduler", "min_lr", "color_jitter", "sampler", "class_weights"):
        dump["train"].pop(key)
    assert _config_hash(r, fold) == config_hash([dump, ["a"], [], ["b"]])
