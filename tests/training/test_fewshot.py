"""Few-shot LoRA adaptation of ViT encoders on tiny random DINOv2 / DINOv3 models."""

from __future__ import annotations

import json
import re

import pytest
import timm
import torch

from damagemap.adapters.lora import lora_target_modules
from damagemap.artifact import ADAPTER_FILE, load_model, read_manifest, save_model
from damagemap.data.synthetic import synthetic_tiles
from damagemap.encoders import build_encoder
from damagemap.encoders.vit import VARIANTS, ViTEncoder
from damagemap.errors import ConfigError
from damagemap.heads import build_head
from damagemap.model import DamageModel
from damagemap.protocols.runner import run_fold
from damagemap.protocols.splits import Fold
from damagemap.recipe import FewShotConfig, Recipe
from damagemap.training.fewshot import adapt_encoder_lora, lora_supported
from tests.tiny import TinyEncoder

TINY = {
    "dinov3-vits16": dict(embed_dim=32, depth=2, num_heads=2, img_size=64),
    "dinov2-vits14": dict(embed_dim=32, depth=2, num_heads=2, img_size=56),
}
SIZE = {"dinov3-vits16": 64, "dinov2-vits14": 56}
HEAD = {"kind": "progressive", "options": {"mid_channels": 16, "n_stages": 2}}


def _recipe(name: str, **extra) -> Recipe:
    return Recipe.model_validate(
        {
            "name": f"lora-{name}",
            "encoder": {"name": name, "pretrained": False, "options": TINY[name]},
            "input": {"size": SIZE[name], "mode": "resize"},
            "head": HEAD,
            "fewshot": {},
            **extra,
        }
    )


def _model(name: str, seed: int = 0) -> DamageModel:
    torch.manual_seed(seed)
    recipe = _recipe(name)
    encoder = build_encoder(name, pretrained=False, **TINY[name])
    head = build_head(HEAD["kind"], in_channels=encoder.channels, out_channels=1, **HEAD["options"]).eval()
    return DamageModel(recipe, encoder, head)


def _qkvb_model() -> DamageModel:
    """DINOv3 with a (non-zero) qkv bias: timm's Eva then bypasses ``qkv.forward``."""
    torch.manual_seed(0)
    variant = VARIANTS["dinov3-vits16"]
    timm_model = timm.create_model(
        "vit_small_patch16_dinov3_qkvb", num_classes=0, dynamic_img_size=True, **TINY["dinov3-vits16"]
    )
    with torch.no_grad():
        for block in timm_model.blocks:
            block.attn.q_bias.normal_(0, 0.1)
            block.attn.v_bias.normal_(0, 0.1)
    encoder = ViTEncoder("dinov3-vits16", variant, timm_model, 3).freeze()
    head = build_head(HEAD["kind"], in_channels=encoder.channels, out_channels=1, **HEAD["options"]).eval()
    return DamageModel(_recipe("dinov3-vits16"), encoder, head)


@pytest.fixture(scope="module")
def shots():
    return {size: synthetic_tiles("south", 4, size=size, seed=11) for size in set(SIZE.values())}


def _base_state(encoder) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in encoder.state_dict().items()}


@pytest.mark.parametrize("name", list(TINY))
def test_targets_are_four_linear_layers_per_block(name: str) -> None:
    encoder = _model(name).encoder
    names = lora_target_modules(encoder, ["qkv", "proj", "fc1", "fc2"])
    assert len(names) == 4 * TINY[name]["depth"]
    assert all(re.search(r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))$", n) for n in names)
    assert not any("patch_embed" in n for n in names)


@pytest.mark.parametrize("name", list(TINY))
def test_zero_b_gives_the_base_output_before_training(name: str, shots) -> None:
    model = _model(name)
    x = torch.rand(2, 3, SIZE[name], SIZE[name], generator=torch.Generator().manual_seed(1))
    base = model.encoder(x)[0]
    adapted = adapt_encoder_lora(model, shots[SIZE[name]][:1], FewShotConfig(epochs=1, lr=1e-12))
    # lr ~ 0: the LoRA B matrices stay (numerically) zero, so the output is the base output
    assert torch.allclose(adapted.encoder(x)[0], base, atol=1e-6)
    modules = {k.rsplit(".lora_", 1)[0] for k in adapted.adapter}
    assert len(modules) == adapted.metrics["lora"]["n_modules"] == 4 * TINY[name]["depth"]


@pytest.mark.parametrize("which", ["dinov3-vits16", "dinov2-vits14", "dinov3-qkvb"])
def test_only_lora_parameters_train_and_base_weights_stay(which: str, shots) -> None:
    model = _qkvb_model() if which == "dinov3-qkvb" else _model(which)
    name = model.encoder.name
    before_enc, before_head = _base_state(model.encoder), _base_state(model.head)
    base_fp = model.encoder.fingerprint
    cfg = FewShotConfig(epochs=2, lr=1e-3, batch_size=2)
    adapted = adapt_encoder_lora(model, shots[SIZE[name]], cfg)

    # the input model is untouched
    assert model.adapter is None and model.encoder.fingerprint == base_fp
    assert all(torch.equal(v, before_enc[k]) for k, v in model.encoder.state_dict().items())
    # base weights of the adapted copy are the original ones; only lora_* tensors are new
    after = adapted.encoder.state_dict()
    lora = {k: v for k, v in after.items() if ".lora_" in k}
    base = {k.replace(".base_layer.", "."): v for k, v in after.items() if ".lora_" not in k}
    assert base.keys() == before_enc.keys()
    assert all(torch.equal(v, before_enc[k]) for k, v in base.items())
    assert all(torch.equal(v, before_head[k]) for k, v in adapted.head.state_dict().items())
    # every LoRA B moved away from zero (so every adapted layer, qkv included, got gradients)
    b_mats = {k: v for k, v in lora.items() if ".lora_B." in k}
    assert len(b_mats) == 4 * TINY["dinov3-vits16"]["depth"]
    assert all(v.abs().sum() > 0 for v in b_mats.values())
    # everything is frozen again; the adapter dict holds exactly the LoRA tensors
    assert not any(p.requires_grad for p in adapted.encoder.parameters())
    assert len(adapted.adapter) == len(lora)
    assert adapted.encoder.fingerprint != base_fp
    assert adapted.adapter_config["base_fingerprint"] == base_fp
    assert adapted.adapter_config["adapted_fingerprint"] == adapted.encoder.fingerprint
    assert adapted.metrics["lora"]["trainable_params"] == sum(v.numel() for v in lora.values())


def test_training_reduces_the_loss_and_is_deterministic(shots) -> None:
    name = "dinov3-vits16"
    cfg = FewShotConfig(epochs=6, lr=3e-3, batch_size=4)
    a = adapt_encoder_lora(_model(name), shots[SIZE[name]], cfg)
    hist = [h["loss"] for h in a.metrics["lora"]["history"]]
    assert len(hist) == 6 and hist[-1] < hist[0]
    b = adapt_encoder_lora(_model(name), shots[SIZE[name]], cfg)
    assert [h["loss"] for h in b.metrics["lora"]["history"]] == hist
    assert a.encoder.fingerprint == b.encoder.fingerprint


def test_artifact_round_trip_reapplies_the_adapter(shots, tmp_path) -> None:
    name = "dinov2-vits14"
    model = _model(name)
    base_fp = model.encoder.fingerprint
    adapted = adapt_encoder_lora(model, shots[SIZE[name]], FewShotConfig(epochs=1, lr=1e-3))
    out = save_model(adapted, tmp_path / "m")
    assert (out / ADAPTER_FILE).is_file()
    manifest = read_manifest(out)
    assert manifest["encoder"]["fingerprint"] == base_fp
    assert manifest["encoder"]["adapted_fingerprint"] == adapted.encoder.fingerprint
    lora = manifest["adapter"]["modules"][-1]
    assert lora["kind"] == "lora" and lora["r"] == 8 and lora["alpha"] == 16

    base = _model(name).encoder  # a fresh base encoder (same seed → same weights)
    loaded = load_model(out, encoder=base)
    assert base.fingerprint == base_fp and not any(".lora_" in k for k in base.state_dict())
    assert loaded.encoder.fingerprint == adapted.encoder.fingerprint
    x = torch.rand(2, 3, 56, 56, generator=torch.Generator().manual_seed(3))
    assert torch.equal(loaded.logits(x), adapted.logits(x))
    assert not torch.equal(loaded.logits(x), model.logits(x))
    # the check is against the BASE encoder: an already-adapted encoder is refused
    with pytest.raises(ConfigError, match="fingerprint"):
        load_model(out, encoder=adapted.encoder)


def test_non_vit_encoder_is_refused_clearly(shots) -> None:
    enc = TinyEncoder().freeze()
    head = build_head("fpn", in_channels=enc.channels, out_channels=1, fpn_channels=8, embed_channels=8)
    model = DamageModel(Recipe(name="t", input={"size": 64}), enc, head)
    assert not lora_supported(enc, FewShotConfig().target_modules)
    with pytest.raises(ConfigError, match="needs a ViT encoder; tiny-test has no qkv/proj/fc1/fc2 layers"):
        adapt_encoder_lora(model, shots[64], FewShotConfig())


def _fold(train, val, test, shot_keys) -> Fold:
    return Fold(
        "fewshot/south/1shot/f0",
        [s.key for s in train] + shot_keys,
        [s.key for s in val],
        [s.key for s in test],
        "south",
        {"protocol": "fewshot", "shots": shot_keys},
    )


def test_runner_adapts_vit_and_skips_other_encoders(tmp_path) -> None:
    north = synthetic_tiles("north", 6, size=64, seed=2)
    south = synthetic_tiles("south", 4, size=64, seed=4)
    by_key = {s.key: s for s in north + south}
    fold = _fold(north[:4], north[4:], south[1:], [south[0].key])
    train = {"epochs": 2, "batch_size": 4}
    objectives = {
        "focal": {"options": {"alpha": 0.7, "gamma": 2.0}},
        "pc": {"weight": 0.01, "options": {"n_per_class": 4, "pixels_per_image": 64}},
        "dpt": {"weight": 0.001},
    }
    vit = _recipe("dinov3-vits16", train=train, objectives=objectives)
    record = run_fold(vit, fold, by_key, tmp_path / "cache", None)
    assert record["lora"]["n_shots"] == 1 and len(record["lora"]["history"]) == 3
    assert set(record["scores_decoder_only"]) == set(record["scores"])

    effnet = Recipe.model_validate(
        {
            "name": "eff",
            "encoder": {"pretrained": False},
            "input": {"size": 64},
            "head": {"options": {"fpn_channels": 8, "embed_channels": 8}},
            "train": train,
            "fewshot": {},
        }
    )
    record = run_fold(effnet, fold, by_key, tmp_path / "cache", None)
    assert record["lora"] == "skipped (non-ViT encoder)" and "scores_decoder_only" not in record


def test_fewshot_protocol_freezes_the_source_decoder_and_reports_n0(tmp_path) -> None:
    """Default (the paper): one decoder trained on the sources per fold, shared by every n; n = 0
    is that source-only model; the shots only adapt the encoder."""
    from damagemap.protocols.runner import make_folds, run_experiment

    samples = synthetic_tiles("north", 10, size=64, seed=2) + synthetic_tiles("south", 10, size=64, seed=4)
    folds = [
        f for f in make_folds(samples, "fewshot", (1,), k=2, shots=(0, 2), targets=["south"]) if f.meta["fold"] == 0
    ]
    assert [f.meta["n_shots"] for f in folds] == [0, 2] and folds[0].train == folds[1].train
    recipe = _recipe("dinov3-vits16", train={"epochs": 1, "batch_size": 4})
    results = run_experiment([recipe], samples, folds, tmp_path / "exp", cache_dir=None)
    records = {
        r.meta["n_shots"]: json.loads(p.read_text())
        for r, p in zip(results, sorted((tmp_path / "exp" / "folds" / recipe.name).glob("*.json")))
    }
    assert "lora" not in records[0] and records[2]["lora"]["n_shots"] == 2
    assert records[2]["scores_decoder_only"] == records[0]["scores"]  # the same source-only decoder
