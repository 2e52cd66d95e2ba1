"""CLI train / evaluate / predict with ATL on a tiny random SAM (encoder-side adapter in the artifact)."""

import json

import numpy as np
import yaml
from PIL import Image
from typer.testing import CliRunner

from damagemap.cli import app
from damagemap.data.synthetic import synthetic_tiles
from tests.sam_tiny import SAM_ENC, SAM_HEAD

runner = CliRunner()


def test_train_prints_trainable_share_and_the_model_predicts(tmp_path) -> None:
    data = tmp_path / "data" / "north"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for s in synthetic_tiles("north", 5, size=64, seed=3):
        Image.fromarray((s.image.transpose(1, 2, 0) * 255).astype(np.uint8)).save(data / "images" / f"{s.id}.png")
        Image.fromarray(s.mask.astype(np.uint8)).save(data / "masks" / f"{s.id}.png")
    recipe = {
        "name": "atl_cli",
        "encoder": {"name": "sam-vitb", "pretrained": False, "options": SAM_ENC},
        "input": {"size": 64},
        "head": {"kind": "sam_decoder", "options": SAM_HEAD},
        "atl": {"placement": "block"},
        "train": {"epochs": 1, "batch_size": 2},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    model = tmp_path / "model"
    result = runner.invoke(
        app, ["train", str(tmp_path / "r.yaml"), "--data", str(tmp_path / "data"), "--out", str(model), "--no-cache"]
    )
    assert result.exit_code == 0, result.output
    counts = json.loads((model / "manifest.json").read_text())["parameters"]
    assert f"trainable parameters: {counts['trainable']:,} of {counts['total']:,}" in result.output
    assert counts["encoder_trainable"] > 0 and (model / "adapter.safetensors").is_file()
    result = runner.invoke(app, ["evaluate", str(model), "--data", str(tmp_path / "data"), "--json", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(result.stdout)["all"]["miou"] <= 1  # results on stdout; progress and warnings on stderr
    img = next((data / "images").iterdir())
    result = runner.invoke(app, ["predict", str(model), str(img), "--out", str(tmp_path / "pred")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pred" / f"{img.stem}_mask.png").is_file()
