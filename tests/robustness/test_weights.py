"""Defects 3, 6, 11, 18: weight files verified, shareable, present, and never unpickled."""

from __future__ import annotations

import os
import pickle
import shutil
import stat

import torch

from damagemap.io_atomic import umask
from tests.robustness.conftest import MAP, assert_clean_failure, final_outputs, rgb_scene, run_cli, snapshot


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_bit_flipped_head_is_refused_naming_the_file(ws, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(ws.model, model)
    weights = model / "head.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0x10  # one bit of one weight
    weights.write_bytes(bytes(data))
    scene = rgb_scene(tmp_path / "scene.tif")
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    result = run_cli(["map", model, scene, "--out", out, *MAP])
    assert_clean_failure(result, 3, str(weights), "sha256 differs")
    assert snapshot(tmp_path) == before and final_outputs(out) == []


def test_missing_head_is_one_clear_line(ws, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(ws.model, model)
    (model / "head.safetensors").unlink()
    scene = rgb_scene(tmp_path / "scene.tif")
    result = run_cli(["map", model, scene, "--out", tmp_path / "out", *MAP])
    assert_clean_failure(result, 3, str(model / "head.safetensors"), "missing")
    assert final_outputs(tmp_path / "out") == []


def test_weight_files_follow_the_umask(ws, tmp_path):
    mask = umask()  # the session's model was written under the test process's umask
    for f in ws.model.iterdir():
        assert _mode(f) == 0o666 & ~mask, f
    assert _mode(ws.model) == 0o777 & ~mask
    old = os.umask(0o027)
    try:
        out = tmp_path / "m027"
        result = run_cli(["train", ws.recipe, "--data", ws.data, "--domains", "north", "--out", out, "--no-cache"])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert {f.name: _mode(f) for f in out.iterdir()} == {"head.safetensors": 0o640, "manifest.json": 0o640}
    assert _mode(out) == 0o750


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # would create the marker file when unpickled


def _evil_files(tmp_path):
    marker = tmp_path / "PWNED"
    zipped = tmp_path / "evil.pth"
    torch.save({"w": _Evil(marker)}, zipped)
    raw = tmp_path / "evil_raw.pth"
    raw.write_bytes(pickle.dumps(_Evil(marker), protocol=4))
    return marker, [zipped, raw]


def test_malicious_pickle_checkpoint_is_refused(ws, tmp_path):
    marker, files = _evil_files(tmp_path)
    for evil in files:
        recipe = tmp_path / f"{evil.stem}.yaml"
        text = ws.recipe.read_text().replace(
            "{name: efficientnet-lite0}", f"{{name: efficientnet-lite0, checkpoint: {evil}}}"
        )
        recipe.write_text(text)
        out = tmp_path / f"m_{evil.stem}"
        result = run_cli(["train", recipe, "--data", ws.data, "--domains", "north", "--out", out, "--no-cache"])
        assert_clean_failure(result, 3, str(evil), "not a plain tensor checkpoint")
        assert "weights_only" not in result.output and "Weights only" not in result.output
        assert "UserWarning" not in result.output
        assert not out.exists() and not marker.exists()


def test_malicious_pickle_as_video_backbone_is_refused(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    marker, files = _evil_files(tmp_path)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "f.png")
    doc = {
        "images": [{"id": 1, "file_name": "f.png", "width": 32, "height": 32}],
        "annotations": [],
        "categories": [{"id": 1, "name": "Slight"}, {"id": 2, "name": "Severe"}, {"id": 3, "name": "Debris"}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    args = ["video", "train", "recipes/video/maskrcnn_baseline.yaml", "--data", tmp_path / "coco.json"]
    result = run_cli([*args, "--out", tmp_path / "m", "--checkpoint", files[0], "--device", "cpu"])
    assert_clean_failure(result, 3, str(files[0]), "not a plain tensor checkpoint")
    assert "weights_only" not in result.output and not marker.exists() and not (tmp_path / "m").exists()
