"""Train / evaluate / save / load on a tiny encoder and synthetic data (fast)."""

import numpy as np
import pytest

from damagemap.artifact import load_model, save_model
from damagemap.data.synthetic import synthetic_tiles
from damagemap.errors import ConfigError, InputError
from damagemap.recipe import Recipe
from damagemap.training.pipeline import evaluate_model, train_model
from tests.tiny import TinyEncoder


def _recipe(**train) -> Recipe:
    return Recipe.model_validate(
        {
            "name": "tiny",
            "input": {"size": 64, "mode": "resize"},
            "head": {"kind": "fpn", "options": {"fpn_channels": 16, "embed_channels": 16}},
            "train": {"epochs": 20, "batch_size": 8, "lr": 1e-2, **train},
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    samples = synthetic_tiles("north", 24, size=64, seed=5)
    enc = TinyEncoder().freeze()
    model, result = train_model(_recipe(), samples, encoder=enc, cache_dir=cache)
    return model, result, enc, cache


def test_training_learns_and_keeps_the_best_epoch(trained) -> None:
    model, result, enc, cache = trained
    hist = result.history
    assert len(hist) == 20 and hist[-1]["loss"] < hist[0]["loss"]
    best = max(h["val_miou"] for h in hist)
    assert result.best_score == pytest.approx(best)
    assert hist[result.best_epoch - 1]["val_miou"] == pytest.approx(best)


def test_model_beats_all_background_on_unseen_tiles(trained) -> None:
    model, _, _, cache = trained
    test = synthetic_tiles("north", 8, size=64, seed=9)
    scores = evaluate_model(model, test, cache)
    all_bg_miou = np.mean([1 - np.mean([s.damaged_fraction() for s in test]), 0.0])
    assert scores["all"]["miou"] > all_bg_miou + 0.1
    assert scores["north"]["n_samples"] == 8


def test_training_is_deterministic(trained, tmp_path) -> None:
    model, result, _, cache = trained
    samples = synthetic_tiles("north", 24, size=64, seed=5)
    _, again = train_model(_recipe(), samples, encoder=TinyEncoder().freeze(), cache_dir=cache)
    assert [h["loss"] for h in again.history] == pytest.approx([h["loss"] for h in result.history])


def test_artifact_round_trip_and_refusals(trained, tmp_path) -> None:
    model, _, enc, _ = trained
    out = save_model(model, tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == ["head.safetensors", "manifest.json"]
    loaded = load_model(out, encoder=enc)
    img = synthetic_tiles("south", 1, size=96, seed=3)[0].image
    assert np.array_equal(model.predict_proba(img), loaded.predict_proba(img))
    with pytest.raises(ConfigError, match="fingerprint"):
        load_model(out, encoder=TinyEncoder(seed=7).freeze())
    with pytest.raises(ConfigError, match="input bands"):
        load_model(out, encoder=TinyEncoder(in_chans=4).freeze())
    with pytest.raises(ConfigError, match="not a damagemap model"):
        load_model(tmp_path)


def test_predict_refuses_wrong_band_count(trained) -> None:
    model = trained[0]
    with pytest.raises(InputError, match="has 4 band.*expects 3"):
        model.predict_proba(np.zeros((4, 64, 64), np.float32), "four.tif")


def test_tile_mode_predicts_any_size_at_native_resolution(trained) -> None:
    model = trained[0]
    tiled = model.recipe.model_copy(update={"input": model.recipe.input.model_copy(update={"mode": "tile"})})
    from damagemap.model import DamageModel

    m = DamageModel(tiled, model.encoder, model.head)
    proba = m.predict_proba(np.random.default_rng(0).random((3, 100, 150), dtype=np.float32))
    assert proba.shape == (1, 100, 150) and proba.min() >= 0 and proba.max() <= 1


def test_building_scores_from_footprints(trained) -> None:
    from scipy import ndimage

    model, _, _, cache = trained
    test = synthetic_tiles("north", 6, size=64, seed=9)
    expected = sum(ndimage.label(s.buildings > 0)[1] for s in test)  # every synthetic pixel is labelled
    scores = evaluate_model(model, test, cache)["all"]
    assert scores["n_buildings"] == expected == int(np.sum(scores["building_confusion"]))
    assert scores["building_f1"] > 0.5  # collapsed buildings are easy on synthetic tiles
    assert int(np.sum(scores["confusion"])) == sum(s.mask.size for s in test)
    mean = evaluate_model(model, test, cache, building_rule="mean")["all"]
    assert mean["n_buildings"] == expected
    for s in test:
        s.buildings = None
    assert "building_f1" not in evaluate_model(model, test, cache)["all"]
