"""SegFormer MiT encoders: a tiny random config saved in Hugging Face layout, loaded back."""

import pytest
import torch

from damagemap.encoders import build_encoder, list_encoders
from damagemap.errors import CheckpointError

TINY = dict(
    hidden_sizes=[8, 16, 24, 32],
    depths=[1, 1, 1, 1],
    num_attention_heads=[1, 1, 2, 2],
    decoder_hidden_size=16,
    num_labels=4,
)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    model = SegformerForSemanticSegmentation(SegformerConfig(**TINY)).eval()
    path = tmp_path_factory.mktemp("segformer")
    model.save_pretrained(path)
    return path, model


def test_registered_sizes() -> None:
    names = {s.name for s in list_encoders()}
    assert {f"segformer-mit-b{i}" for i in range(6)} <= names


def test_round_trip_gives_the_hf_hidden_states(hf_folder) -> None:
    path, ref = hf_folder
    enc = build_encoder("segformer-mit-b0", checkpoint=path)
    assert enc.channels == (8, 16, 24, 32) and enc.strides == (4, 8, 16, 32)
    assert enc.checkpoint_sha256 and all(not p.requires_grad for p in enc.parameters())
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    feats = enc(x)
    with torch.no_grad():
        expected = ref.segformer(pixel_values=(x - enc._mean) / enc._std, output_hidden_states=True).hidden_states
    assert [tuple(f.shape) for f in feats] == [(2, 8, 16, 24), (2, 16, 8, 12), (2, 24, 4, 6), (2, 32, 2, 3)]
    for a, b in zip(feats, expected):
        torch.testing.assert_close(a, b)


def test_missing_and_mismatched_checkpoints(hf_folder, tmp_path) -> None:
    path, _ = hf_folder
    with pytest.raises(CheckpointError, match="not found"):
        build_encoder("segformer-mit-b0", checkpoint=tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no config.json"):
        build_encoder("segformer-mit-b0", checkpoint=tmp_path)
    # the bare weights file is read with the real MiT-b0 config: other widths
    with pytest.raises(CheckpointError, match="right MiT size"):
        build_encoder("segformer-mit-b0", checkpoint=path / "model.safetensors")
    # the bare file with matching config overrides loads
    enc = build_encoder("segformer-mit-b0", checkpoint=path / "model.safetensors", **TINY)
    assert enc.channels == (8, 16, 24, 32)


def test_trains_saves_and_loads_through_the_core_pipeline(hf_folder, tmp_path) -> None:
    import numpy as np

    from damagemap.artifact import load_model, save_model
    from damagemap.recipe import Recipe
    from damagemap.training.pipeline import train_model
    from damagemap.types import Sample

    path, _ = hf_folder
    rng = np.random.default_rng(0)
    samples = []
    for i in range(6):
        mask = np.zeros((64, 64), np.int64)
        mask[:32], mask[32:, :32], mask[32:, 32:] = 1, 2, 3
        image = (rng.random((3, 64, 64)) * 0.2 + mask[None] / 4).astype(np.float32)
        samples.append(Sample(image=image, mask=mask, domain="d", id=f"s{i}"))
    recipe = Recipe.model_validate(
        {
            "name": "seg",
            "encoder": {"name": "segformer-mit-b0", "checkpoint": str(path)},
            "input": {"size": 64},
            "classes": ["background", "undamaged", "damaged", "debris"],
            "damage_classes": [2, 3],
            "head": {"kind": "segformer_mlp", "options": {"decoder_dim": 16}},
            "objectives": {"ce": {"weight": 1.0}},
            "train": {"epochs": 2, "batch_size": 3, "augment": []},
        }
    )
    model, _ = train_model(recipe, samples, cache_dir=tmp_path / "cache")
    assert model.head.out_channels == 4 and not recipe.binary
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert loaded.encoder.name == "segformer-mit-b0"
    np.testing.assert_allclose(loaded.predict_proba(samples[0].image), model.predict_proba(samples[0].image), atol=1e-5)
