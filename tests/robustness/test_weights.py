"""Model folders: corrupt, incomplete or edited weights and manifests, and hostile checkpoints."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat

from tests.robustness.conftest import MAP, RECIPE, assert_clean_failure, final_outputs, rgb_scene, run_cli


def _copy(ws, tmp_path, name="model"):
    return shutil.copytree(ws.model, tmp_path / name)


def test_bit_flipped_head_is_refused_naming_the_file(ws, tmp_path) -> None:
    model = _copy(ws, tmp_path)
    head = model / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-10] ^= 0xFF
    head.write_bytes(bytes(data))
    result = run_cli(["map", model, rgb_scene(tmp_path / "s.tif"), "--out", tmp_path / "out", *MAP])
    assert_clean_failure(result, 3, "head.safetensors", "sha256")
    assert final_outputs(tmp_path / "out") == []


def test_missing_head_is_one_clear_line(ws, tmp_path) -> None:
    model = _copy(ws, tmp_path)
    (model / "head.safetensors").unlink()
    result = run_cli(["map", model, rgb_scene(tmp_path / "s.tif"), "--out", tmp_path / "out", *MAP])
    assert_clean_failure(result, 3, "head.safetensors", "missing")


def test_weight_files_follow_the_umask(ws, tmp_path) -> None:
    old = os.umask(0o022)
    try:
        result = run_cli(
            ["train", ws.recipe, "--data", ws.data, "--domains", "north", "--out", tmp_path / "m", "--no-cache"]
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "m" / "head.safetensors").stat().st_mode) == 0o644


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.target}",))

    target = ""


def test_pickle_checkpoint_is_refused_without_suggesting_weights_only_false(ws, tmp_path) -> None:
    _Evil.target = str(tmp_path / "PWNED")
    evil = tmp_path / "evil.pth"
    with evil.open("wb") as f:
        pickle.dump(_Evil(), f)
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(RECIPE.replace("{name: efficientnet-lite0}", f"{{name: efficientnet-lite0, checkpoint: {evil}}}"))
    result = run_cli(["train", recipe, "--data", ws.data, "--out", tmp_path / "m", "--no-cache"])
    assert_clean_failure(result, 3, "evil.pth", "not a plain tensor checkpoint")
    assert "weights_only" not in result.output
    assert not (tmp_path / "PWNED").exists()


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
