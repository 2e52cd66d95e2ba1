"""``standardize: dataset``: statistics from the training split only, applied identically later."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from damagemap.artifact import load_model, save_model
from damagemap.data.band_stats import compute_band_stats, fit_input_stats
from damagemap.data.views import (
    REFERENCE_MEAN,
    REFERENCE_STD,
    make_views,
    preprocess_key,
    standardize_with_stats,
    view_image,
)
from damagemap.errors import ConfigError
from damagemap.recipe import BandStats, InputConfig, Recipe
from damagemap.tile_predictor import ModelTilePredictor
from damagemap.training.pipeline import evaluate_model, train_model
from damagemap.types import Sample
from tests.tiny import TinyEncoder


def _sample(i: int, offset: float, bands: int = 4, size: int = 32, domain: str = "d") -> Sample:
    rng = np.random.default_rng(i)
    image = (rng.normal(0, 1, (bands, size, size)) * np.arange(1, bands + 1)[:, None, None] + offset).astype(np.float32)
    mask = np.zeros((size, size), np.int64)
    mask[4:12, 4:12] = 1
    return Sample(image, mask, domain, f"s{i}")


def test_streaming_stats_equal_pooled_numpy_and_skip_nan_and_nodata() -> None:
    rng = np.random.default_rng(0)
    images = [rng.normal(3, 2, (3, h, w)).astype(np.float32) for h, w in [(5, 7), (40, 9), (1, 1), (16, 16)]]
    images[1][0, :3] = np.nan
    images[3][2, 5:, :] = -9999
    stats = compute_band_stats(images, nodata=-9999)
    for b in range(3):
        pooled = np.concatenate([im[b].ravel() for im in images]).astype(np.float64)
        pooled = pooled[np.isfinite(pooled) & (pooled != -9999)]
        assert stats.mean[b] == pytest.approx(pooled.mean(), rel=1e-9)
        assert stats.std[b] == pytest.approx(pooled.std(), rel=1e-9)
    assert stats.n_pixels == min(5 * 7 + 40 * 9 + 1 + 256 - 27, 5 * 7 + 40 * 9 + 1 + 256 - 176)


def test_a_band_without_valid_pixels_is_an_error() -> None:
    image = np.ones((2, 4, 4), np.float32)
    image[1] = np.nan
    with pytest.raises(ConfigError, match=r"band\(s\) \[1\] have no valid"):
        compute_band_stats([image])


def test_fit_uses_the_selected_bands_and_keeps_preset_stats() -> None:
    samples = [_sample(i, 0.0) for i in range(3)]
    cfg = fit_input_stats(InputConfig(size=32, bands=[3, 0], standardize="dataset"), samples)
    assert cfg.band_stats.mean == pytest.approx(
        [np.mean([s.image[b].mean() for s in samples]) for b in (3, 0)], abs=1e-6
    )
    assert cfg.band_stats.std[0] > 3 * cfg.band_stats.std[1]  # band 3 has 4x the spread of band 0
    preset = InputConfig(standardize="dataset", band_stats=BandStats(mean=[0, 0], std=[1, 1]))
    assert fit_input_stats(preset, samples) is preset
    assert fit_input_stats(InputConfig(standardize="image"), samples).band_stats is None


def test_stats_map_training_moments_to_the_reference_and_enter_the_cache_key() -> None:
    s = _sample(0, 5.0, bands=2)
    stats = compute_band_stats([s.image])
    out = standardize_with_stats(s.image, stats.mean, stats.std)
    for band in out:  # normal data: clipping at ±2 std barely moves the moments
        assert band.mean() == pytest.approx(REFERENCE_MEAN, abs=0.01)
        assert band.std() == pytest.approx(REFERENCE_STD, abs=0.01)
    a = InputConfig(standardize="dataset", band_stats=BandStats(mean=[0, 0], std=[1, 1]))
    b = InputConfig(standardize="dataset", band_stats=BandStats(mean=[0, 0], std=[1, 2]))
    assert preprocess_key(a) != preprocess_key(b)


def _recipe() -> Recipe:
    return Recipe.model_validate(
        {
            "name": "std",
            "input": {"size": 32, "bands": [0, 1, 3], "standardize": "dataset"},
            "head": {"kind": "fpn", "options": {"fpn_channels": 8, "embed_channels": 8}},
            "train": {"epochs": 2, "batch_size": 4},
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    train = [_sample(i, 0.0) for i in range(6)]
    val = [_sample(100 + i, 50.0) for i in range(2)]  # far-off values: would shift the stats if used
    model, _ = train_model(
        _recipe(), train, val, encoder=TinyEncoder().freeze(), cache_dir=tmp_path_factory.mktemp("cache")
    )
    return model, train, val


def test_training_stores_stats_of_the_training_split_only(trained) -> None:
    model, train, _ = trained
    expected = compute_band_stats([s.image[[0, 1, 3]] for s in train])
    assert model.recipe.input.band_stats.mean == pytest.approx(expected.mean)
    assert model.recipe.input.band_stats.std == pytest.approx(expected.std)
    assert _recipe().input.band_stats is None  # the caller's recipe is not modified


def test_internal_validation_split_is_excluded_from_the_stats(tmp_path) -> None:
    samples = [_sample(i, 0.0) for i in range(4)] + [_sample(9, 80.0)]
    recipe = _recipe().model_copy(
        update={"train": _recipe().train.model_copy(update={"val_fraction": 0.2, "epochs": 1})}
    )
    model, _ = train_model(recipe, samples, encoder=TinyEncoder().freeze(), cache_dir=tmp_path)
    from damagemap.training.pipeline import split_validation

    kept, held = split_validation(samples, 0.2, recipe.train.seed)
    expected = compute_band_stats([s.image[[0, 1, 3]] for s in kept])
    assert model.recipe.input.band_stats.mean == pytest.approx(expected.mean)
    assert len(held) == 1


def test_saved_model_predicts_and_maps_with_the_stored_stats(trained, tmp_path) -> None:
    model, _, _ = trained
    out = save_model(model, tmp_path / "m")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["input"]["band_stats"]["mean"] == pytest.approx(model.recipe.input.band_stats.mean)
    loaded = load_model(out, encoder=model.encoder)
    stats = loaded.recipe.input.band_stats
    image = _sample(200, 0.5).image  # an unseen image whose own moments differ from the stored ones
    # predict: the stored statistics, not the image's own, are applied
    manual = torch.from_numpy(standardize_with_stats(image[[0, 1, 3]], stats.mean, stats.std))[None]
    expected = loaded.probabilities(loaded.logits(manual))[0].numpy()
    np.testing.assert_allclose(loaded.predict_proba(image), expected, atol=1e-6)
    # mapping: tiles arrive band-selected, get the same stored statistics
    tiles = image[None, [0, 1, 3]]
    np.testing.assert_allclose(ModelTilePredictor(out, model=loaded)(tiles)[0], expected, atol=1e-6)
    shifted = loaded.recipe.model_copy(deep=True)
    shifted.input.band_stats.mean[0] += 40.0
    loaded.recipe = shifted
    assert not np.allclose(ModelTilePredictor(out, model=loaded)(tiles)[0], expected, atol=1e-3)


def test_evaluating_without_stored_stats_is_a_config_error(trained) -> None:
    model, _, val = trained
    model = type(model)(_recipe(), model.encoder, model.head)
    with pytest.raises(ConfigError, match="no band statistics are stored"):
        evaluate_model(model, val, cache_dir=None)


def test_view_image_uses_the_stats_given(trained) -> None:
    model, train, _ = trained
    cfg = model.recipe.input
    s = train[0]
    x = view_image(s, make_views([s], cfg)[0], cfg)
    st = cfg.band_stats
    np.testing.assert_allclose(x.numpy(), standardize_with_stats(s.image[[0, 1, 3]], st.mean, st.std), atol=1e-6)
