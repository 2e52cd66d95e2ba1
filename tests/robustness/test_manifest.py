"""Model manifests that were edited by hand: another encoder, a wrong band count."""

from __future__ import annotations

import json
import shutil

from tests.robustness.conftest import MAP, final_outputs, rgb_scene, run_cli


def _copy(ws, tmp_path, name="model"):
    return shutil.copytree(ws.model, tmp_path / name)


def _edit_manifest(model, edit) -> None:
    path = model / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_manifest_naming_another_encoder_says_which(ws, tmp_path) -> None:
    model = _copy(ws, tmp_path)
    _edit_manifest(model, lambda m: m["encoder"].update(name="resnet18"))
    result = run_cli(["map", model, rgb_scene(tmp_path / "s.tif"), "--out", tmp_path / "out", *MAP])
    assert result.exit_code in (3, 4), result.output
    assert "trained with encoder 'resnet18'" in result.output and "Traceback" not in result.output


def test_manifest_with_a_wrong_band_count_is_refused(ws, tmp_path) -> None:
    model = _copy(ws, tmp_path)
    _edit_manifest(model, lambda m: m["encoder"].update(in_chans=5))
    result = run_cli(["map", model, rgb_scene(tmp_path / "s.tif"), "--out", tmp_path / "out", *MAP])
    assert result.exit_code in (3, 4), result.output
    assert "manifest.json" in result.output and "Traceback" not in result.output
    assert final_outputs(tmp_path / "out") == []
