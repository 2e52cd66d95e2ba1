"""Real concrete-damage photos (HRCDS, 5 classes): the severity segmentation recipe learns them.

A short version of the real-data check (the full 5-fold run is `damagemap experiment
recipes/concrete_damage_lite.yaml --protocol kfold`, reported in the issue notes): train on 24
photos at 128 px for a few epochs and score the other 12.
"""

from pathlib import Path

import numpy as np
import pytest

from damagemap.data.loading import load_samples
from damagemap.recipe import apply_overrides, load_recipe
from damagemap.training.pipeline import evaluate_model, train_model

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "concrete_damage_lite.yaml"
pytestmark = pytest.mark.slow


def test_hrcds_beats_all_background_and_finds_spalling(shared_data, tmp_path) -> None:
    root = shared_data / "concrete_damage" / "hrcds"
    if not root.is_dir():
        pytest.skip(f"HRCDS data not found at {root}")
    recipe = apply_overrides(load_recipe(RECIPE), ["input.size=128", "train.epochs=8", "train.val_fraction=0"])
    samples = load_samples(root, recipe.data, len(recipe.classes))
    assert len(samples) == 36 and {s.domain for s in samples} == {"hrcds"}
    train, test = samples[::3] + samples[1::3], samples[2::3]
    model, _ = train_model(recipe, train, cache_dir=tmp_path)
    scores = evaluate_model(model, test, tmp_path)["all"]
    # all-background: background IoU = its pixel share; every other present class 0
    labels = np.concatenate([s.mask.ravel() for s in test])
    present = len(np.unique(labels))
    assert scores["miou"] > (labels == 0).mean() / present + 0.1
    assert scores["iou"][4] > 0.2  # spalling, the largest damage class
