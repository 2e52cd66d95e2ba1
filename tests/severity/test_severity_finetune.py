"""recipes/severity.yaml fine-tunes the SegFormer encoder end to end; severity_lite stays frozen.

The published recipe runs on a tiny random MiT saved in Hugging Face layout (the real one needs
the nvidia/mit-b2 download), at 64 px for 2 epochs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from damagemap.artifact import load_model, save_model
from damagemap.encoders import build_encoder
from damagemap.recipe import apply_overrides, load_recipe
from damagemap.training.pipeline import train_model
from damagemap.types import Sample

REPO = Path(__file__).resolve().parents[2]
TINY = dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 2], num_labels=4)
SMALL = ["input.size=64", "train.epochs=2", "train.batch_size=3", "head.options.decoder_dim=16", "train.augment=[]"]


@pytest.fixture(scope="module")
def mit_folder(tmp_path_factory) -> Path:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mit")
    SegformerForSemanticSegmentation(SegformerConfig(**TINY)).save_pretrained(path)
    return path


def _samples() -> list[Sample]:
    """Street-like layouts: intact wall (top left), damaged wall (top right), debris (bottom)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(6):
        mask = np.zeros((64, 64), np.int64)
        mask[:32, :32], mask[:32, 32:], mask[44:] = 1, 2, 3
        image = (rng.random((3, 64, 64)) * 0.2 + mask[None] / 4).astype(np.float32)
        out.append(Sample(image=image, mask=mask, domain="town", id=f"s{i}"))
    return out


def _recipe(mit_folder: Path, *extra: str):
    return apply_overrides(
        load_recipe(REPO / "recipes" / "severity.yaml"), [f"encoder.checkpoint={mit_folder}", *SMALL, *extra]
    )


def test_published_recipe_fine_tunes_the_encoder_and_reloads_identically(mit_folder, tmp_path) -> None:
    recipe = _recipe(mit_folder)
    assert recipe.encoder.finetune is True
    base = build_encoder(recipe.encoder.name, checkpoint=mit_folder)
    samples = _samples()
    model, result = train_model(recipe, samples, cache_dir=tmp_path / "cache")
    # end to end: no feature cache, every encoder weight trained and saved
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*"))
    assert model.adapter_config is not None and model.adapter_config["modules"] == [{"kind": "finetune"}]
    counts = model.metrics["parameters"]
    assert counts["encoder_trainable"] == counts["encoder_total"] > 0
    trained, start = dict(model.encoder.named_parameters()), dict(base.named_parameters())
    assert set(model.adapter) == set(start)
    moved = [n for n in start if not torch.equal(trained[n], start[n])]
    assert moved == list(start)  # every tensor moved
    assert not any(p.requires_grad for p in model.encoder.parameters())  # frozen once trained

    out = save_model(model, tmp_path / "model")
    manifest = json.loads((out / "manifest.json").read_text())
    enc = manifest["encoder"]
    assert enc["name"] == "segformer-mit-b2" and enc["checkpoint"] == str(mit_folder)
    assert enc["fingerprint"] == base.fingerprint  # the base encoder, as built from the checkpoint
    assert enc["adapted_fingerprint"] == model.encoder.fingerprint != base.fingerprint
    loaded = load_model(out)
    assert loaded.encoder.fingerprint == model.encoder.fingerprint
    for s in samples[:2]:
        np.testing.assert_array_equal(loaded.predict_proba(s.image), model.predict_proba(s.image))


def test_frozen_recipes_are_unchanged_head_only_on_cached_features(mit_folder, tmp_path) -> None:
    recipe = _recipe(mit_folder, "encoder.finetune=false")
    base = build_encoder(recipe.encoder.name, checkpoint=mit_folder)
    model, _ = train_model(recipe, _samples(), cache_dir=tmp_path / "cache")
    assert any((tmp_path / "cache").rglob("*"))  # features were cached
    assert model.adapter is None and model.adapter_config is None
    assert model.encoder.fingerprint == base.fingerprint
    assert model.metrics["parameters"]["encoder_trainable"] == 0
    manifest = json.loads((save_model(model, tmp_path / "model") / "manifest.json").read_text())
    assert manifest["adapter"] is None and manifest["encoder"]["adapted_fingerprint"] is None
    lite = load_recipe(REPO / "recipes" / "severity_lite.yaml")
    assert lite.encoder.finetune is False
