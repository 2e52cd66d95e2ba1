"""Fixtures of the robustness suite: a tiny trained model, a small scene, and a CLI runner that checks the rules.

Every bad-input case goes through the CLI and must end with its exit code, one clear line
naming the file or option, no traceback, no file under a final output name and nothing
written outside ``--out``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from typer.testing import CliRunner, Result

from damagemap.cli import app
from damagemap.data.synthetic import synthetic_tiles

RECIPE = """
name: robust_lite
encoder: {name: efficientnet-lite0}
input: {size: 64, mode: resize}
head: {kind: fpn, options: {fpn_channels: 16, embed_channels: 16}}
train: {epochs: 1, batch_size: 8, lr: 0.003}
"""
TRANSFORM = Affine(0.5, 0, 500000, 0, -0.5, 4000000)  # EPSG:32616, 0.5 m pixels
MAP = ["--replicate-single-band", "--tile", "64", "--overlap", "16", "--grid-m", "0"]


def write_domain(root: Path, domain: str, n: int, seed: int, mask_scale: int = 1) -> Path:
    """A ``folders`` domain of ``n`` 64 px RGB PNGs with 0/1 masks (×``mask_scale``)."""
    for sub in ("images", "masks"):
        (root / domain / sub).mkdir(parents=True, exist_ok=True)
    for s in synthetic_tiles(domain, n, size=64, seed=seed):
        rgb = (s.image.transpose(1, 2, 0) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(root / domain / "images" / f"{s.id}.png")
        Image.fromarray((s.mask * mask_scale).astype(np.uint8)).save(root / domain / "masks" / f"{s.id}.png")
    return root / domain


def write_scene(path: Path, data: np.ndarray, crs: str = "EPSG:32616", **profile) -> Path:
    """A GeoTIFF of ``data [C, H, W]`` on the 0.5 m test grid."""
    count, height, width = data.shape
    kwargs = dict(driver="GTiff", width=width, height=height, count=count, dtype=data.dtype.name)
    with rasterio.open(path, "w", crs=crs, transform=TRANSFORM, **kwargs, **profile) as dst:
        dst.write(data)
    return path


def rgb_scene(path: Path, size: int = 96, seed: int = 0) -> Path:
    """A random uint8 RGB scene."""
    return write_scene(path, (np.random.default_rng(seed).random((3, size, size)) * 254 + 1).astype(np.uint8))


@dataclass
class Workspace:
    """A folder with a trained model, its data and recipe."""

    root: Path
    model: Path
    data: Path
    recipe: Path


@pytest.fixture(scope="session")
def ws(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("robust")
    write_domain(root / "data", "north", 6, 1)
    write_domain(root / "data", "south", 4, 2)
    (root / "tiny.yaml").write_text(RECIPE)
    args = ["train", str(root / "tiny.yaml"), "--data", str(root / "data"), "--domains", "north"]
    result = CliRunner().invoke(app, [*args, "--out", str(root / "model"), "--no-cache"])
    assert result.exit_code == 0, result.output
    return Workspace(root, root / "model", root / "data", root / "tiny.yaml")


def snapshot(folder: Path) -> dict[str, float]:
    """Every file under ``folder`` with its modification time (to see what a run wrote)."""
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def run_cli(args: list[str], cwd: Path | None = None) -> Result:
    """Invoke the CLI (in ``cwd`` if given)."""
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(app, [str(a) for a in args])
    finally:
        os.chdir(old)


def assert_clean_failure(result: Result, code: int, *needles: str) -> str:
    """Exit ``code``; the error is one line containing every needle; no traceback. Returns the line."""
    text = result.output
    assert result.exit_code == code, text
    assert result.exception is None or isinstance(result.exception, SystemExit), text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:") or line.startswith("Error")]
    joined = " ".join(text.split())  # click's usage box wraps long lines
    for needle in needles:
        assert needle in joined, text
    if code in (3, 4):
        assert len(errors) == 1, text
        return errors[0]
    return joined


def final_outputs(folder: Path) -> list[Path]:
    """Files under ``folder`` with a final (not hidden) name."""
    if not folder.exists():
        return []
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
