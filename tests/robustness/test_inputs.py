"""Bad option values, bad training data and bad scenes: one clear line, no traceback, no output."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.robustness.conftest import (
    MAP,
    assert_clean_failure,
    final_outputs,
    rgb_scene,
    run_cli,
    snapshot,
    write_domain,
    write_scene,
)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["map", "{model}", "{scene}", "--out", "{out}", "--bands", "1,x,3"], "--bands"),
        (["map", "{model}", "{scene}", "--out", "{out}", "--tile", "0"], "--tile"),
        (["experiment", "{recipe}", "--data", "{data}", "--shots", "a,b", "--out", "{out}"], "--shots"),
    ],
)
def test_malformed_option_values_are_usage_errors_naming_the_option(ws, tmp_path, args, option) -> None:
    scene = rgb_scene(tmp_path / "scene.tif")
    values = {"model": ws.model, "scene": scene, "out": tmp_path / "out", "recipe": ws.recipe, "data": ws.data}
    before = snapshot(tmp_path)
    result = run_cli([a.format(**values) for a in args])
    assert_clean_failure(result, 2, option)
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["map", "predict", "train"])
def test_out_that_is_a_file_is_refused_before_any_work(ws, tmp_path, command) -> None:
    target = tmp_path / "taken"
    target.write_text("keep me")
    scene = rgb_scene(tmp_path / "scene.tif")
    image = next((ws.data / "north" / "images").iterdir())
    args = {
        "map": ["map", ws.model, scene, "--out", target, *MAP],
        "predict": ["predict", ws.model, image, "--out", target],
        "train": ["train", ws.recipe, "--data", ws.data, "--out", target, "--no-cache"],
    }[command]
    assert_clean_failure(run_cli(args), 4, str(target), "--out")
    assert target.read_text() == "keep me"


def test_mixed_band_counts_name_the_odd_image(tmp_path) -> None:
    data = tmp_path / "data"
    write_domain(data, "north", 4, 1)
    odd = sorted((data / "north" / "images").iterdir())[2]
    Image.open(odd).convert("L").save(odd)
    recipe = tmp_path / "r.yaml"
    from tests.robustness.conftest import RECIPE

    recipe.write_text(RECIPE)
    line = assert_clean_failure(
        run_cli(["train", recipe, "--data", data, "--out", tmp_path / "m", "--no-cache"]), 3, odd.name, "band"
    )
    assert "1 band" in line and "3" in line
    assert final_outputs(tmp_path / "m") == []


def test_binary_masks_stored_as_0_255_train_like_0_1_masks_and_say_so(tmp_path) -> None:
    from tests.robustness.conftest import RECIPE

    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    write_domain(tmp_path / "d01", "north", 4, 1)
    write_domain(tmp_path / "d255", "north", 4, 1, mask_scale=255)
    ones = run_cli(["train", recipe, "--data", tmp_path / "d01", "--out", tmp_path / "m01", "--no-cache"])
    scaled = run_cli(["train", recipe, "--data", tmp_path / "d255", "--out", tmp_path / "m255", "--no-cache"])
    assert ones.exit_code == 0 and scaled.exit_code == 0, scaled.output
    assert "0 and 255" in scaled.output and "0 and 255" not in ones.output
    # same labels after the mapping → the same trained head, byte for byte
    assert (tmp_path / "m255" / "head.safetensors").read_bytes() == (tmp_path / "m01" / "head.safetensors").read_bytes()


def test_mask_values_outside_the_recipe_classes_are_refused(tmp_path) -> None:
    from tests.robustness.conftest import RECIPE

    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    write_domain(tmp_path / "d", "north", 3, 1)
    bad = sorted((tmp_path / "d" / "north" / "masks").iterdir())[1]
    mask = np.zeros((64, 64), np.uint8)
    mask[10:20, 10:20] = 7
    Image.fromarray(mask).save(bad)
    result = run_cli(["train", recipe, "--data", tmp_path / "d", "--out", tmp_path / "m", "--no-cache"])
    assert_clean_failure(result, 3, bad.name, "mask values [7]")
    assert final_outputs(tmp_path / "m") == []


def _reflectance_scene(path):
    values = np.random.default_rng(0).random((3, 96, 96)) * 6500 + 54
    return write_scene(path, values.astype(np.float32))


def test_float_scene_outside_0_1_without_scale_is_refused(ws, tmp_path) -> None:
    scene = _reflectance_scene(tmp_path / "refl.tif")
    result = run_cli(["map", ws.model, scene, "--out", tmp_path / "out", *MAP])
    assert_clean_failure(result, 3, "refl.tif", "--scale")
    assert final_outputs(tmp_path / "out") == []


def test_explicit_scale_that_clips_most_pixels_warns(ws, tmp_path) -> None:
    scene = _reflectance_scene(tmp_path / "refl.tif")
    clipping = run_cli(["map", ws.model, scene, "--out", tmp_path / "a", *MAP, "--scale", "0,1000"])
    fitting = run_cli(["map", ws.model, scene, "--out", tmp_path / "b", *MAP, "--scale", "0,7000"])
    assert clipping.exit_code == 0 and fitting.exit_code == 0, clipping.output
    assert "clipped" in clipping.output and "clipped" not in fitting.output


def test_band_count_mismatch_names_the_cli_flags(ws, tmp_path) -> None:
    scene = write_scene(tmp_path / "two.tif", np.full((2, 64, 64), 100, np.uint8))
    result = run_cli(["map", ws.model, scene, "--out", tmp_path / "out", "--tile", "64", "--grid-m", "0"])
    line = assert_clean_failure(result, 3, "two.tif", "--bands")
    assert "SceneInputSpec" not in line.split("in Python")[0]
