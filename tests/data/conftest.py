"""Fixtures for the data-reader tests: tiny synthetic datasets written to tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` (``[H, W]`` or ``[H, W, C]``, uint8/uint16) as a PNG, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def png() -> Callable[[Path, np.ndarray], Path]:
    """The :func:`write_png` helper, as a fixture."""
    return write_png


@pytest.fixture
def rng() -> np.random.Generator:
    """Deterministic random generator."""
    return np.random.default_rng(0)


@pytest.fixture
def make_domain(tmp_path: Path, rng: np.random.Generator) -> Callable[..., Path]:
    """Factory writing ``<tmp>/root/<domain>/{images,<masks_dir>}/<id>.png``; returns the root.

    Masks hold random values from ``values``.
    """

    def make(
        domain: str,
        n: int = 2,
        size: tuple[int, int] = (16, 24),
        values: tuple[int, ...] = (0, 1),
        masks_dir: str = "masks",
    ) -> Path:
        root = tmp_path / "root"
        for i in range(n):
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            mask = rng.choice(np.array(values, dtype=np.uint8), size=size)
            write_png(root / domain / "images" / f"tile{i}.png", image)
            write_png(root / domain / masks_dir / f"tile{i}.png", mask)
        return root

    return make


@pytest.fixture
def truncate() -> Callable[[Path], Path]:
    """Cut a file's bytes in half (a truncated download)."""

    def cut(path: Path) -> Path:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path

    return cut
