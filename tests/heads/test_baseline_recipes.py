"""The shipped baseline recipes use the settings of the reference code."""

from __future__ import annotations

from pathlib import Path

import pytest

from damagemap.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
BASELINES = ("baseline_unet_resnet18", "baseline_unet_resnet152", "baseline_yolo_fpn")

REFERENCE = {
    "img_size": 128,
    "batch_size": 32,
    "epochs": 10,
    "lr": 3e-4,
    "weight_decay": 1e-4,
    "grad_clip": 1.0,
    "focal_alpha": 0.70,
    "focal_gamma": 2.0,
}
"""ai4city-hkust/SmartTransfer, ``src/config.py`` ``get_default_cfg()`` (the values its trainer
uses for the ``resnet18``, ``resnet152`` and ``yololiked`` archs: AdamW on every parameter, best
epoch by validation mIoU). Its dataset (``src/datasets/seg_dataset.py``) only resizes and
normalises: no augmentation anywhere in the reference."""


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_recipe_uses_the_reference_settings(name: str) -> None:
    path = RECIPES / f"{name}.yaml"
    r = load_recipe(path)
    assert r.encoder.name == "pixels"
    assert (r.input.size, r.input.mode) == (REFERENCE["img_size"], "resize")
    t = r.train
    assert t.batch_size == REFERENCE["batch_size"]
    assert t.epochs == REFERENCE["epochs"]
    assert t.lr == pytest.approx(REFERENCE["lr"])
    assert t.weight_decay == pytest.approx(REFERENCE["weight_decay"])
    assert t.grad_clip == pytest.approx(REFERENCE["grad_clip"])
    assert t.augment == [] and t.color_jitter is None and t.scheduler == "none"
    assert t.select_by == "miou"
    assert list(r.objectives) == ["focal"]
    focal = r.objectives["focal"]
    assert focal.weight == 1.0
    assert focal.options == {"alpha": REFERENCE["focal_alpha"], "gamma": REFERENCE["focal_gamma"]}
    # the recipe says where its numbers come from
    text = path.read_text()
    assert "ai4city-hkust/SmartTransfer" in text and "src/config.py" in text
