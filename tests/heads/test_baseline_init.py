"""Initialisation of the trainable baselines: ``encoder.checkpoint`` → the U-Net's encoder, else random.

A randomly initialised torchvision ResNet-18 state dict stands in for the ImageNet weights (no
downloads here); what is checked is that the recipe's ``encoder.checkpoint`` reaches the U-Net,
is refused where there is no pretrained backbone, and that the initialisation is recorded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from damagemap.artifact import load_model, save_model
from damagemap.data.synthetic import synthetic_tiles
from damagemap.errors import ConfigError
from damagemap.heads import build_head
from damagemap.heads.unet import UNetHead
from damagemap.recipe import Recipe
from damagemap.training import pipeline
from damagemap.training.pipeline import encoder_for, head_options, train_model
from tests.tiny import TinyEncoder

SIZE = 32
UNET = {"encoder_name": "resnet18", "decoder_channels": [16, 16, 8, 8, 8]}
YOLO = {"width": 4, "depths": [1, 1, 1, 1], "embed_channels": 8}


def _recipe(kind: str, options: dict, checkpoint: str | None = None, encoder: str = "pixels") -> Recipe:
    return Recipe.model_validate(
        {
            "name": f"tiny_{kind}",
            "encoder": {"name": encoder, "checkpoint": checkpoint},
            "input": {"size": SIZE},
            "head": {"kind": kind, "options": options},
            "objectives": {"focal": {"options": {"alpha": 0.7, "gamma": 2.0}}},
            "train": {"epochs": 1, "batch_size": 4, "augment": [], "seed": 0},
        }
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A torchvision ResNet-18 state dict on disk (random weights standing in for ImageNet's)."""
    import torchvision

    torch.manual_seed(123)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def samples():
    return synthetic_tiles("north", 5, size=SIZE, seed=7, damaged_share=0.9)


def test_recipe_encoder_checkpoint_initialises_the_unet_encoder(checkpoint) -> None:
    path, state = checkpoint
    recipe = _recipe("unet", UNET, checkpoint=str(path))
    encoder = encoder_for(recipe)  # the pixels encoder accepts the checkpoint (it is the head's)
    options = head_options(recipe, encoder)
    assert options == {**UNET, "encoder_checkpoint": str(path)}
    head = build_head("unet", encoder.channels, 1, **options)
    assert isinstance(head, UNetHead)
    for k, v in head.encoder.state_dict().items():
        assert torch.equal(v, state[k]), k
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert head.init_note == f"imagenet (resnet18.pth, sha256 {sha[:12]})"
    assert "encoder_checkpoint" not in head.config  # trained weights are saved with the model


def test_training_records_the_init_in_metrics_and_manifest(checkpoint, samples, tmp_path) -> None:
    path, _ = checkpoint
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    model, _ = train_model(_recipe("unet", UNET, checkpoint=str(path)), samples, cache_dir=None)
    assert model.metrics["init"] == f"imagenet (resnet18.pth, sha256 {sha[:12]})"
    out = save_model(model, tmp_path / "model")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["init"] == model.metrics["init"]
    assert manifest["encoder"]["checkpoint"] == str(path)
    assert "encoder_checkpoint" not in manifest["head"]
    # the checkpoint only initialised the weights: the artifact loads without the file
    moved = path.rename(path.with_name("elsewhere.pth"))
    try:
        loaded = load_model(out)
    finally:
        moved.rename(path)
    assert loaded.metrics["init"] == model.metrics["init"]
    for k, v in model.head.state_dict().items():
        assert torch.equal(loaded.head.state_dict()[k], v), k


@pytest.mark.parametrize(("kind", "options"), [("unet", UNET), ("yolo_fpn", YOLO)], ids=["unet", "yolo_fpn"])
def test_without_checkpoint_the_baselines_say_random_init(kind: str, options: dict, samples) -> None:
    model, _ = train_model(_recipe(kind, options), samples, cache_dir=None)
    assert model.metrics["init"] == "random init"


def test_frozen_encoder_models_carry_no_init_note(samples) -> None:
    recipe = _recipe("fpn", {"fpn_channels": 8, "embed_channels": 8}, encoder="tiny-test")
    model, _ = train_model(recipe, samples, encoder=TinyEncoder().freeze(), cache_dir=None)
    assert "init" not in model.metrics


def test_yolo_refuses_a_checkpoint_before_any_work(checkpoint, samples, monkeypatch) -> None:
    path, _ = checkpoint
    monkeypatch.setattr(pipeline, "cached_items", lambda *a, **k: pytest.fail("must refuse before encoding"))
    with pytest.raises(ConfigError, match=r"resnet18\.pth.*'yolo_fpn'.*randomly initialised.*no ImageNet"):
        train_model(_recipe("yolo_fpn", YOLO, checkpoint=str(path)), samples, cache_dir=None)


def test_checkpoint_for_a_head_without_backbone_or_given_twice_is_refused(checkpoint) -> None:
    path = str(checkpoint[0])
    fpn = _recipe("fpn", {"fpn_channels": 8}, checkpoint=path)
    with pytest.raises(ConfigError, match="'fpn' cannot use it: it has no pretrained backbone"):
        head_options(fpn, encoder_for(fpn))
    twice = _recipe("unet", {**UNET, "encoder_checkpoint": path}, checkpoint=path)
    with pytest.raises(ConfigError, match="given twice"):
        head_options(twice, encoder_for(twice))


def test_other_encoders_keep_their_checkpoint() -> None:
    recipe = _recipe("fpn", {"fpn_channels": 8}, checkpoint="weights.pth", encoder="tiny-test")
    assert head_options(recipe, TinyEncoder()) == {"fpn_channels": 8}
