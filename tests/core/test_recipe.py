from pathlib import Path

import pytest

from damagemap.errors import ConfigError
from damagemap.recipe import Recipe, load_recipe
from damagemap.video.config import load_video_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(path: Path) -> None:
    video = "schema: video" in path.read_text()  # detector recipes: damagemap.video schema
    recipe = (load_video_recipe if video else load_recipe)(path)
    assert recipe.name == path.stem


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ntrain:\n  epochs: 3\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*train.learning_rate"):
        load_recipe(p)


def test_damage_class_must_be_a_class_index() -> None:
    with pytest.raises(ValueError, match="damage_classes"):
        Recipe(name="x", classes=["bg", "damaged"], damage_classes=[2])


def test_binary_vs_multiclass_outputs() -> None:
    assert Recipe(name="b").num_outputs == 1
    grades = Recipe(name="g", classes=["bg", "none", "minor", "major", "destroyed"], damage_classes=[3, 4])
    assert not grades.binary and grades.num_outputs == 5


def test_missing_recipe_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_recipe(p)


def test_overrides_parse_yaml_values_and_revalidate() -> None:
    from damagemap.recipe import apply_overrides

    r = apply_overrides(
        Recipe(name="x"), ["data.format=xbd", "data.chip=512", "train.epochs=3", "objectives.pc.weight=0.01"]
    )
    assert (r.data.format, r.data.chip, r.train.epochs) == ("xbd", 512, 3)
    assert r.objectives["pc"].weight == 0.01
    with pytest.raises(ConfigError, match="data.format"):
        apply_overrides(Recipe(name="x"), ["data.format=netcdf"])
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides(Recipe(name="x"), ["epochs"])


def test_published_smart_transfer_recipe_is_the_papers() -> None:
    r = load_recipe(RECIPES / "smart_transfer.yaml")
    terms = {k: (t.weight, t.options) for k, t in r.objectives.items()}
    assert terms["focal"] == (1.0, {"alpha": 0.7, "gamma": 2.0})
    assert terms["pc"][0] == 0.01 and terms["dpt"][0] == 0.001 and set(terms) == {"focal", "pc", "dpt"}
    assert r.train.augment == [] and r.input.size == 128 and r.train.batch_size == 32 and r.train.lr == 3e-4
    assert r.fewshot is not None and (r.fewshot.draw, r.fewshot.decoder) == ("random", "sources")
