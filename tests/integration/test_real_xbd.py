"""Real xBD tiles: rasterised building counts and a small train-on-two / test-on-third run."""

import json

import numpy as np
import pytest

from damagemap.data.xbd import rasterize_instances, read_xbd
from damagemap.recipe import Recipe
from damagemap.training.pipeline import evaluate_model, train_model


@pytest.fixture(scope="module")
def xbd(shared_data):
    root = shared_data / "xbd"
    if not root.is_dir():
        pytest.skip(f"xBD fixture not found at {root}")
    return root


def test_building_counts_match_the_json_polygons(xbd) -> None:
    for s in read_xbd(xbd):
        doc = json.loads((xbd / "labels" / f"{s.id}_post_disaster.json").read_text())
        n_polygons = len(doc["features"]["xy"])
        assert s.meta["n_buildings"] == n_polygons
        # every polygon is drawn (its own id survives in an instance raster) and together they
        # are exactly the building mask
        instances = rasterize_instances(s.meta["buildings_info"], s.buildings.shape)
        assert len(np.unique(instances[instances > 0])) == n_polygons, s.id
        assert np.array_equal(instances > 0, s.buildings.astype(bool)), s.id


@pytest.mark.slow
def test_model_trained_on_two_joplin_tiles_beats_chance_on_the_third(xbd, tmp_path) -> None:
    samples = [s for s in read_xbd(xbd, damage="binary-major") if s.domain == "joplin-tornado"]
    train, test = samples[:2], samples[2:]
    recipe = Recipe.model_validate(
        {
            "name": "xbd-lite",
            "input": {"size": 256, "mode": "tile"},
            "head": {"kind": "fpn"},
            "train": {"epochs": 8, "batch_size": 8, "lr": 1e-3, "val_fraction": 0.0},
        }
    )
    model, _ = train_model(recipe, train, cache_dir=tmp_path)
    scores = evaluate_model(model, test, tmp_path)["joplin-tornado"]
    target = test[0].mask
    valid = target != 255
    prevalence = float(np.mean([s.damaged_fraction() for s in train]))
    p = float((target[valid] == 1).mean())
    # chance: predict "damaged" at random with the training prevalence (expected IoUs in closed form)
    iou_damage = p * prevalence / (p + prevalence - p * prevalence)
    iou_bg = (1 - p) * (1 - prevalence) / (1 - p * prevalence)
    chance_miou = (iou_damage + iou_bg) / 2
    all_background_miou = (1 - p) / 2
    print(
        f"xBD joplin tiles 0,1 -> tile 2: mIoU {scores['miou']:.3f} damage IoU {scores['damage_iou']:.3f} "
        f"F1 {scores['f1']:.3f}; chance {chance_miou:.3f}; all-background {all_background_miou:.3f}"
    )
    assert scores["miou"] > max(chance_miou, all_background_miou) + 0.05
