"""Flip test-time augmentation (damagemap.tta) in prediction, evaluation and the tile predictor."""

import numpy as np
import pytest
import torch

from damagemap.artifact import save_model
from damagemap.data.synthetic import synthetic_tiles
from damagemap.recipe import Recipe
from damagemap.tile_predictor import ModelTilePredictor
from damagemap.training.metrics import ConfusionMatrix
from damagemap.training.pipeline import evaluate_model, train_model
from damagemap.tta import FLIPS, averaged, transform_key, tta_transforms
from tests.tiny import TinyEncoder


def _recipe(tta: str = "none") -> Recipe:
    return Recipe.model_validate(
        {
            "name": "tiny",
            "input": {"size": 64, "mode": "resize"},
            "head": {"kind": "fpn", "options": {"fpn_channels": 8, "embed_channels": 8}},
            "train": {"epochs": 3, "batch_size": 8, "lr": 1e-2},
            "eval": {"tta": tta},
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    model, _ = train_model(
        _recipe(), synthetic_tiles("north", 8, size=64, seed=3), encoder=TinyEncoder().freeze(), cache_dir=cache
    )
    return model, cache


def _with_tta(model, tta: str):
    from dataclasses import replace

    return replace(
        model, recipe=model.recipe.model_copy(update={"eval": model.recipe.eval.model_copy(update={"tta": tta})})
    )


def test_averaged_is_the_mean_of_the_flipped_back_predictions() -> None:
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ramp = torch.arange(64.0).view(1, 1, 8, 8)

    def predict(xs):  # position-dependent, so a missing flip-back changes the result
        return xs[0][:, :1] * ramp

    want = (
        predict([x])
        + predict([x.flip(-1)]).flip(-1)
        + predict([x.flip(-2)]).flip(-2)
        + predict([x.flip(-1).flip(-2)]).flip(-1).flip(-2)
    ) / 4
    torch.testing.assert_close(averaged(predict, [x]), want)
    assert tta_transforms("none") == FLIPS[:1] and len(tta_transforms("flip")) == 4
    assert [transform_key(t) for t in FLIPS] == ["", "#h", "#v", "#hv"]


def test_model_tta_equals_mean_of_flips_and_is_flip_equivariant(trained) -> None:
    model, _ = trained
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    plain = _with_tta(model, "none")
    flip = _with_tta(model, "flip")
    means = [t(plain.probabilities(plain.logits(t(x)))) for t in FLIPS]
    torch.testing.assert_close(flip.proba_batch(x), torch.stack(means).mean(0))
    # the average over the flip group commutes with every flip; a single pass does not
    for t in FLIPS[1:]:
        torch.testing.assert_close(flip.proba_batch(t(x)), t(flip.proba_batch(x)), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(plain.proba_batch(x.flip(-1)), plain.proba_batch(x).flip(-1), atol=1e-5)
    image = x[0].numpy()  # 64 px = the input size: predict_proba is the TTA batch prediction
    torch.testing.assert_close(torch.from_numpy(flip.predict_proba(image)), flip.proba_batch(x[:1])[0])
    assert not np.allclose(flip.predict_proba(image), plain.predict_proba(image))


def test_evaluation_with_tta_matches_tta_predictions(trained, tmp_path) -> None:
    model, _ = trained
    flip = _with_tta(model, "flip")
    test = synthetic_tiles("north", 4, size=80, seed=11)  # 80 px: resized to 64 and back
    enc = TinyEncoder().freeze()
    flip.encoder = enc
    scores = evaluate_model(flip, test, tmp_path / "c")
    assert enc.calls == 4  # the four flips of the 4 views, one batch each
    cm = ConfusionMatrix(2)
    for s in test:
        cm.update(flip.labels_from_proba(flip.predict_proba(s.image)), s.mask)
    want = cm.scores((1,))
    assert scores["north"]["miou"] == pytest.approx(want["miou"], abs=2e-3)
    plain_scores = evaluate_model(_with_tta(model, "none"), test, tmp_path / "c")
    assert plain_scores["north"]["miou"] != scores["north"]["miou"]


def test_tile_predictor_tta_is_the_mean_over_flips(trained, tmp_path) -> None:
    model, _ = trained
    out = save_model(model, tmp_path / "m")
    tiles = np.random.default_rng(0).random((2, 3, 48, 48), dtype=np.float32)  # resized to 64 and back
    plain = ModelTilePredictor(out, model=model)
    flip = ModelTilePredictor(out, model=model, tta="flip")
    want = np.mean(
        [t(torch.from_numpy(plain(np.ascontiguousarray(t(torch.from_numpy(tiles)).numpy())))).numpy() for t in FLIPS], 0
    )
    np.testing.assert_allclose(flip(tiles), want, atol=1e-5)
    assert flip.fingerprint != plain.fingerprint  # a resumed map never mixes the two
    _, pooled = flip.predict(tiles, head=False)
    _, pooled_plain = plain.predict(tiles)
    np.testing.assert_allclose(pooled, pooled_plain, atol=1e-6)  # diversity features: the unflipped pass
