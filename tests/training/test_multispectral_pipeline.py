"""Multispectral Landslide4Sense-layout data through the public CLI and pipeline.

The .h5 files are written in the exact official layout (``img/image_N.h5`` with key ``img``
[H, W, 14], ``mask/mask_N.h5`` with key ``mask``). Landslides are brighter only in B12 and
slope (bands 11, 12), never in RGB, so learning them needs non-RGB bands.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from damagemap.artifact import load_model
from damagemap.cli import app
from damagemap.data.landslide4sense import read_landslide4sense
from damagemap.data.synthetic_landslide4sense import write_landslide4sense
from damagemap.recipe import Recipe
from damagemap.training.pipeline import evaluate_model, train_model

runner = CliRunner()

SUBSET = """
name: l4s_subset
encoder: {name: efficientnet-lite0}
data: {format: landslide4sense}
input: {size: 64, bands: [11, 7, 12], standardize: dataset}
head: {kind: fpn, options: {fpn_channels: 16, embed_channels: 16}}
objectives: {focal: {weight: 0.5}, dice: {weight: 0.5}}
train: {epochs: 8, batch_size: 8, lr: 0.01, val_fraction: 0}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("l4s")
    write_landslide4sense(root / "TrainData", 16, seed=1, size=64)
    write_landslide4sense(root / "ValidData", 6, seed=2, size=64)
    return root


def test_band_subset_train_evaluate_through_the_cli(data: Path, tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(SUBSET)
    result = runner.invoke(
        app,
        [
            "train",
            str(tmp_path / "r.yaml"),
            "--data",
            str(data),
            "--domains",
            "TrainData",
            "--out",
            str(tmp_path / "model"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    stats = manifest["recipe"]["input"]["band_stats"]
    train = read_landslide4sense(data / "TrainData")
    pooled = np.stack([s.image[[11, 7, 12]] for s in train])
    assert stats["mean"] == pytest.approx(pooled.mean(axis=(0, 2, 3)).tolist(), rel=1e-4)
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "model"),
            "--data",
            str(data),
            "--domains",
            "ValidData",
            "--json",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["ValidData"]["n_samples"] == 6
    # landslides found from the non-RGB bands: far above the IoU of calling everything landslide
    fraction = np.mean([s.mask.mean() for s in read_landslide4sense(data / "ValidData")])
    assert scores["ValidData"]["damage_iou"] > max(0.3, 3 * fraction)
    # predict reads .h5 patches too, with the stored statistics
    h5 = data / "ValidData" / "img" / "image_1.h5"
    result = runner.invoke(app, ["predict", str(tmp_path / "model"), str(h5), "--out", str(tmp_path / "pred")])
    assert result.exit_code == 0, result.output
    mask = np.array(Image.open(tmp_path / "pred" / "image_1_mask.png"))
    model = load_model(tmp_path / "model")
    sample = read_landslide4sense(data / "ValidData")[0]
    np.testing.assert_array_equal(mask, model.labels_from_proba(model.predict_proba(sample.image)))


def test_band_index_out_of_range_fails_cleanly_in_the_cli(data: Path, tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(SUBSET.replace("[11, 7, 12]", "[3, 2, 14]"))
    result = runner.invoke(
        app,
        [
            "train",
            str(tmp_path / "r.yaml"),
            "--data",
            str(data),
            "--domains",
            "ValidData",
            "--out",
            str(tmp_path / "model"),
            "--no-cache",
        ],
    )
    assert result.exit_code != 0
    assert "band index [14] out of range for an image with 14 bands" in " ".join(result.output.split())
    assert not (tmp_path / "model").exists()


def test_fourteen_bands_train_the_extra_band_conv_and_reload(data: Path, tmp_path: Path) -> None:
    recipe = Recipe.model_validate(
        {
            "name": "l4s14",
            "data": {"format": "landslide4sense"},
            "input": {"size": 64, "standardize": "dataset", "rgb": [3, 2, 1]},
            "head": {"kind": "fpn", "options": {"fpn_channels": 16, "embed_channels": 16}},
            "objectives": {"focal": {"weight": 0.5}, "dice": {"weight": 0.5}},
            "train": {"epochs": 1, "batch_size": 8, "lr": 0.01, "val_fraction": 0, "augment": []},
        }
    )
    train = read_landslide4sense(data / "TrainData")[:8]
    val = read_landslide4sense(data / "ValidData")[:2]
    model, _ = train_model(recipe, train, val, cache_dir=None)
    assert model.encoder.in_chans == 14
    assert model.adapter_config["modules"] == [
        {"kind": "band_adapter", "in_chans": 14, "rgb": [3, 2, 1], "init": "zeros"}
    ]
    key = "body.conv_stem.extra_conv.weight"
    assert list(model.adapter) == [key] and model.adapter[key].abs().sum() > 0  # trained away from zero init
    from damagemap.artifact import save_model

    out = save_model(model, tmp_path / "m")
    assert list(load_file(str(out / "adapter.safetensors"))) == [key]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["encoder"]["in_chans"] == 14 and manifest["encoder"]["base_in_chans"] == 3
    loaded = load_model(out)  # rebuilds the 3-band encoder, re-applies the saved band adapter
    assert loaded.encoder.in_chans == 14 and loaded.encoder.fingerprint == model.encoder.fingerprint
    torch.testing.assert_close(loaded.encoder.get_submodule("body.conv_stem").extra_conv.weight, model.adapter[key])
    np.testing.assert_allclose(loaded.predict_proba(val[0].image), model.predict_proba(val[0].image), atol=1e-5)
    assert evaluate_model(loaded, val, cache_dir=None)["all"]["n_samples"] == 2


def test_band_adapter_is_attached_before_atl_and_both_reload(data: Path, tmp_path: Path) -> None:
    from damagemap.artifact import save_model

    recipe = Recipe.model_validate(
        {
            "name": "l4s_atl",
            "input": {"size": 56, "standardize": "dataset", "rgb": [3, 2, 1]},
            "encoder": {
                "name": "dinov2-vits14",
                "pretrained": False,
                "options": {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 56},
            },
            "head": {"kind": "progressive", "options": {}},
            "atl": {"placement": "prompt", "prompt_reduction": 8},
            "train": {"epochs": 1, "batch_size": 4, "val_fraction": 0, "augment": []},
        }
    )
    samples = read_landslide4sense(write_landslide4sense(tmp_path / "d", 5, seed=4, size=56))
    model, _ = train_model(recipe, samples[:4], samples[4:], cache_dir=None)
    assert [m["kind"] for m in model.adapter_config["modules"]] == ["band_adapter", "atl"]
    assert "model.patch_embed.proj.extra_conv.weight" in model.adapter
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert loaded.encoder.fingerprint == model.encoder.fingerprint
    np.testing.assert_allclose(loaded.predict_proba(samples[4].image), model.predict_proba(samples[4].image), atol=1e-5)
