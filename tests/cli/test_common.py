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
    assert result.exit_code == 4 and "video recipe" in result.output and "damagemap video train" in result.output


def test_exit_codes_by_error_kind() -> None:
    import typer

    from damagemap.cli.common import clean_errors
    from damagemap.errors import CheckpointError, ConfigError, InputError

    errors = {
        "input": InputError(f"{'x' * 90}/[red]scene.tif", "has 1 band(s) but the model expects 3"),
        "checkpoint": CheckpointError("head.safetensors", "corrupt"),
        "config": ConfigError("recipe.yaml: head.colour: unknown key"),
        "bug": RuntimeError("unexpected"),
    }
    demo = typer.Typer()

    @demo.command()
    @clean_errors
    def fail(kind: str, count: int = 1) -> None:
        raise errors[kind]

    codes = {kind: runner.invoke(demo, [kind]) for kind in errors}
    assert {kind: r.exit_code for kind, r in codes.items()} == {"input": 3, "checkpoint": 3, "config": 4, "bug": 1}
    assert codes["input"].output == f"error: {errors['input']}\n"  # one line: not wrapped, no markup
    assert isinstance(codes["bug"].exception, RuntimeError)  # a bug keeps its traceback
    assert runner.invoke(demo, ["input", "--count", "x"]).exit_code == 2  # usage error: click's code
