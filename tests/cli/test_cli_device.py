"""``--device`` / ``--precision`` on every command that runs a model (CPU only here)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from damagemap.cli import app
from tests.cli.test_cli import RECIPE, _write_domain

runner = CliRunner()

COMMANDS = {
    "train": ["train", "r.yaml", "--data", "d", "--out", "m"],
    "evaluate": ["evaluate", "m", "--data", "d"],
    "predict": ["predict", "m", "a.png", "--out", "o"],
    "experiment": ["experiment", "r.yaml", "--data", "d", "--out", "o"],
    "map": ["map", "m", "s.tif", "--out", "o"],
    "suggest": ["suggest", "m", "s.tif", "--out", "o/next.gpkg"],
    "severity": ["severity", "m", "photos", "--out", "o"],
    "video train": ["video", "train", "r.yaml", "--data", "c.json", "--out", "m"],
    "video evaluate": ["video", "evaluate", "m", "--data", "c.json"],
    "video experiment": ["video", "experiment", "r.yaml", "--data", "c.json", "--out", "o"],
    "video predict": ["video", "predict", "m", "v.mp4", "--out", "o"],
}
WITH_PRECISION = {"train", "evaluate", "predict", "experiment", "map", "suggest", "severity"}


@pytest.fixture
def no_gpu(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unusable_device_is_refused_before_any_work(no_gpu, tmp_path, command):
    result = runner.invoke(app, [*COMMANDS[command], "--device", "cuda"])
    assert result.exit_code == 4, result.output  # a configuration error, not a missing file
    assert "--device cuda: torch sees no CUDA GPU here" in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", sorted(WITH_PRECISION))
def test_fp16_on_the_cpu_is_refused_before_any_work(no_gpu, tmp_path, command):
    result = runner.invoke(app, [*COMMANDS[command], "--device", "cpu", "--precision", "fp16"])
    assert result.exit_code == 4, result.output
    assert "--precision fp16 needs a GPU" in result.output
    assert list(tmp_path.iterdir()) == []


def test_device_and_precision_reach_training_and_the_saved_model_runs_in_bf16(tmp_path, monkeypatch):
    from damagemap.training import pipeline

    seen: dict = {}
    real = pipeline.train_model

    def spy(*args, **kwargs):
        seen.update(device=kwargs["device"], precision=kwargs["precision"])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_model", spy)
    _write_domain(tmp_path / "data", "north", 4, 1)
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    args = ["train", str(tmp_path / "tiny.yaml"), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "m")]
    result = runner.invoke(app, [*args, "--epochs", "1", "--no-cache", "--device", "auto", "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    assert seen == {"device": torch.device("cuda" if torch.cuda.is_available() else "cpu"), "precision": "bf16"}

    from damagemap.artifact import load_model

    model = load_model(tmp_path / "m", device="cpu", precision="bf16")
    assert model.precision == "bf16" and model.device == torch.device("cpu")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        exact = load_model(tmp_path / "m").logits(x)
    approx = model.logits(x)
    assert not torch.equal(exact, approx)  # bf16 autocast really ran
    torch.testing.assert_close(exact, approx, atol=0.1, rtol=0.05)

    images = [str(p) for p in sorted((tmp_path / "data" / "north" / "images").iterdir())[:2]]
    for device in ("cpu", "auto"):
        out = tmp_path / f"pred-{device}"
        result = runner.invoke(app, ["predict", str(tmp_path / "m"), *images, "--out", str(out), "--device", device])
        assert result.exit_code == 0, result.output
        assert len(list(out.glob("*_mask.png"))) == 2
