"""Pair (pre/post) recipes: the pre image is encoded once per view, cached, fused, and it matters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from damagemap.artifact import load_model, save_model
from damagemap.errors import ConfigError, InputError
from damagemap.recipe import Recipe
from damagemap.training.items import cached_items
from damagemap.training.pipeline import evaluate_model, train_model
from damagemap.types import Sample
from tests.tiny import TinyEncoder

SIZE = 64


def change_scenes(n: int, seed: int) -> list[Sample]:
    """Bright squares on a textured ground; the damaged ones are those absent from the pre image.

    Old and new squares look alike in the post image, so only the pre image tells them apart.
    """
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        ground = rng.uniform(0.2, 0.4, (3, SIZE, SIZE)).astype(np.float32)
        post, pre = ground.copy(), ground.copy()
        mask = np.zeros((SIZE, SIZE), np.int64)
        for k in range(6):
            y, x = rng.integers(0, SIZE - 12, 2)
            post[:, y : y + 12, x : x + 12] = 0.9
            if k % 2:  # a new square: damage
                mask[y : y + 12, x : x + 12] = 1
            else:
                pre[:, y : y + 12, x : x + 12] = 0.9
        samples.append(Sample(post, mask, "event", f"t{i:02d}", pre=pre))
    return samples


def _recipe(pair: bool, fusion: str = "concat") -> Recipe:
    return Recipe.model_validate(
        {
            "name": "pair" if pair else "post",
            "input": {"size": SIZE, "mode": "resize", "pair": pair, "fusion": fusion},
            "head": {"kind": "fpn", "options": {"fpn_channels": 16, "embed_channels": 16}},
            "train": {"epochs": 25, "batch_size": 8, "lr": 1e-2, "augment": []},
        }
    )


@pytest.fixture(scope="module")
def data():
    return change_scenes(24, seed=1), change_scenes(12, seed=2)


def test_the_pre_image_is_what_tells_new_from_old(data, tmp_path) -> None:
    train, test = data
    enc = TinyEncoder().freeze()
    scores = {}
    for pair in (False, True):
        model, _ = train_model(_recipe(pair), train, encoder=enc, cache_dir=tmp_path)
        scores[pair] = evaluate_model(model, test, tmp_path)["all"]["f1"]
    print(f"damage F1: post-only {scores[False]:.3f}, pair {scores[True]:.3f}")
    assert scores[True] > scores[False] + 0.15


@pytest.mark.parametrize("fusion", ["difference", "learned"])
def test_every_fusion_trains_saves_and_reloads(data, tmp_path, fusion) -> None:
    train, test = data
    enc = TinyEncoder().freeze()
    model, _ = train_model(_recipe(True, fusion), train[:8], encoder=enc, cache_dir=None)
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m", encoder=TinyEncoder())
    s = test[0]
    torch.testing.assert_close(
        torch.from_numpy(again.predict_proba(s.image, pre=s.pre)),
        torch.from_numpy(model.predict_proba(s.image, pre=s.pre)),
    )
    with pytest.raises(ConfigError, match="needs the pre-event image too"):
        again.predict_proba(s.image)


def test_pre_views_have_their_own_cache_entries_and_post_features_are_shared(data, tmp_path) -> None:
    train, _ = data
    enc = TinyEncoder().freeze()
    post_items = cached_items(train[:3], _recipe(False).input, enc, tmp_path)
    calls = enc.calls
    pair_items = cached_items(train[:3], _recipe(True).input, enc, tmp_path)
    assert enc.calls == calls + 1  # one batch: only the pre views were encoded, the post ones came from the cache
    n = len(enc.channels)
    for p, q in zip(post_items, pair_items):
        assert len(q.features) == 2 * n
        for a, b in zip(p.features, q.features[:n]):
            torch.testing.assert_close(a, b)
        assert not torch.equal(q.features[0], q.features[n])  # pre maps differ from post maps


def test_a_pair_recipe_refuses_samples_without_pre_images(data) -> None:
    train, _ = data
    plain = Sample(train[0].image, train[0].mask, "event", "lonely")
    with pytest.raises(InputError, match="lonely: has no pre-event image, but the recipe is a pair recipe"):
        train_model(_recipe(True), [plain, *train[:3]], encoder=TinyEncoder().freeze(), cache_dir=None)


def test_a_post_only_model_refuses_a_pre_image(data) -> None:
    train, _ = data
    model, _ = train_model(_recipe(False), train[:4], encoder=TinyEncoder().freeze(), cache_dir=None)
    with pytest.raises(ConfigError, match="takes the post-event image only"):
        model.predict_proba(train[0].image, pre=train[0].pre)
