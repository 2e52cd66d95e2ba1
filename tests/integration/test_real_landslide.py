"""Real landslide patches (Nepal, Sichuan): within-region and cross-region runs of the lite recipe.

Measured on this project's machine (see the issue notes): within Sichuan the model beats the
all-background prediction clearly; across regions (Sichuan ⇄ Nepal: different sensors, colour
renderings and landslide sizes, 19 % vs 0.7 % landslide pixels) the embedded ImageNet encoder
does not transfer — the model scores at or below all-background. The cross-region test states
the target and is marked as an expected failure so the gap stays visible.
"""

from pathlib import Path

import numpy as np
import pytest

from damagemap.data.loading import load_samples
from damagemap.protocols import kfold_folds
from damagemap.recipe import load_recipe
from damagemap.training.pipeline import evaluate_model, train_model

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "smart_transfer_lite.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def landslide(shared_data):
    root = shared_data / "landslide"
    if not root.is_dir():
        pytest.skip(f"landslide data not found at {root}")
    recipe = load_recipe(RECIPE)
    return recipe, load_samples(root, recipe.data)


def all_background_miou(samples) -> float:
    """mIoU of predicting background everywhere: (background IoU + 0) / 2."""
    damaged = np.concatenate([(s.mask == 1).ravel() for s in samples])
    return (1 - damaged.mean()) / 2


def test_within_sichuan_beats_all_background(landslide, tmp_path) -> None:
    recipe, samples = landslide
    sichuan = [s for s in samples if s.domain == "sichuan"]
    by_key = {s.key: s for s in sichuan}
    fold = kfold_folds(sichuan, k=5)[0]
    pick = lambda keys: [by_key[k] for k in keys]  # noqa: E731
    model, _ = train_model(recipe, pick(fold.train), pick(fold.val), cache_dir=tmp_path)
    scores = evaluate_model(model, pick(fold.test), tmp_path)["sichuan"]
    baseline = all_background_miou(pick(fold.test))
    print(f"within sichuan (fold 0): mIoU {scores['miou']:.3f} vs all-background {baseline:.3f}")
    assert scores["miou"] > baseline + 0.15


@pytest.mark.xfail(
    strict=True,
    reason="measured: the offline ImageNet encoder does not transfer "
    "between the Nepal and Sichuan landslide renderings (AUC 0.42-0.72 across settings)",
)
@pytest.mark.parametrize("source,target", [("sichuan", "nepal"), ("nepal", "sichuan")])
def test_cross_region_beats_all_background(landslide, tmp_path, source, target) -> None:
    recipe, samples = landslide
    model, _ = train_model(recipe, [s for s in samples if s.domain == source], cache_dir=tmp_path)
    test = [s for s in samples if s.domain == target]
    scores = evaluate_model(model, test, tmp_path)[target]
    baseline = all_background_miou(test)
    print(
        f"{source} -> {target}: mIoU {scores['miou']:.3f} (damage IoU {scores['damage_iou']:.3f}, "
        f"F1 {scores['f1']:.3f}) vs all-background {baseline:.3f}"
    )
    assert scores["miou"] > baseline + 0.05
