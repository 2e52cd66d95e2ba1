"""Malformed option values are usage errors naming the option, parsed before any command runs."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from damagemap.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["map", "m", "s.tif", "--out", "o", "--bands", "1,x,3"], "--bands"),
        (["map", "m", "s.tif", "--out", "o", "--bands", "0,1,2"], "--bands"),
        (["map", "m", "s.tif", "--out", "o", "--scale", "100"], "--scale"),
        (["map", "m", "s.tif", "--out", "o", "--scale", "9,1"], "--scale"),
        (["map", "m", "s.tif", "--out", "o", "--precision", "fp8"], "--precision"),
        (["experiment", "r.yaml", "--data", "d", "--shots", "a,b"], "--shots"),
        (["experiment", "r.yaml", "--data", "d", "--protocol", "loco"], "--protocol"),
        (["severity", "m", "photos", "--out", "o", "--degrees", "damaged=half"], "--degrees"),
        (["video", "predict", "m", "v.mp4", "--out", "o", "--video-start", "yesterday"], "--video-start"),
    ],
)
def test_bad_option_values_are_usage_errors(args: list[str], option: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written, and nothing is: the command body never runs
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert not any(tmp_path.iterdir())


def test_a_video_recipe_is_refused_by_the_core_commands(tmp_path) -> None:
    recipe = tmp_path / "v.yaml"
    recipe.write_text("schema: video\nname: v\n")
    result = runner.invoke(app, ["train", str(recipe), "--data", str(tmp_path), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "video recipe" in result.output and "damagemap video train" in result.output
