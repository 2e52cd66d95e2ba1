"""Synthetic Landslide4Sense patches written in the exact official file layout (tests, demos).

Each patch is ``img`` float32 ``[size, size, 14]`` and ``mask`` uint8 ``[size, size]``. Bands
hold smooth noise around a per-band level; landslides are random ellipses that are brighter in
``signal_bands`` (default B12 SWIR-2 and slope, indices 11 and 12) and *not* in the RGB bands,
so a model must use non-RGB bands to find them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from damagemap.data.landslide4sense import N_BANDS

SIGNAL_BANDS = (11, 12)


def synthetic_patch(
    rng: np.random.Generator, size: int = 128, signal_bands: Sequence[int] = SIGNAL_BANDS, strength: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """One ``(img [H, W, 14] float32, mask [H, W] uint8)`` pair."""
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), dtype=bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0.15, 0.85, 2) * size
        ry, rx = rng.uniform(0.06, 0.2, 2) * size
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    levels = np.linspace(0.6, 1.6, N_BANDS)
    coarse = rng.normal(0, 0.25, (N_BANDS, -(-size // 16), -(-size // 16)))
    smooth = np.kron(coarse, np.ones((16, 16)))[:, :size, :size]
    img = levels[:, None, None] + smooth + rng.normal(0, 0.1, (N_BANDS, size, size))
    for b in signal_bands:
        img[b][mask] += strength
    return np.moveaxis(img, 0, -1).astype(np.float32), mask.astype(np.uint8)


def write_landslide4sense(
    root: str | Path,
    n: int,
    seed: int = 0,
    size: int = 128,
    layout: str = "official",
    start: int = 1,
    signal_bands: Sequence[int] = SIGNAL_BANDS,
) -> Path:
    """Write ``n`` patches under ``root``; returns ``root``.

    ``layout="official"`` writes ``img/image_N.h5`` (key ``img``) and ``mask/mask_N.h5`` (key
    ``mask``); ``"single"`` writes ``image_N.h5`` holding both keys.
    """
    import h5py

    root = Path(root)
    rng = np.random.default_rng(seed)
    if layout not in ("official", "single"):
        raise ValueError(f"layout must be 'official' or 'single', got {layout!r}")
    if layout == "official":
        (root / "img").mkdir(parents=True, exist_ok=True)
        (root / "mask").mkdir(parents=True, exist_ok=True)
    else:
        root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        img, mask = synthetic_patch(rng, size, signal_bands)
        if layout == "official":
            with h5py.File(root / "img" / f"image_{i}.h5", "w") as f:
                f.create_dataset("img", data=img)
            with h5py.File(root / "mask" / f"mask_{i}.h5", "w") as f:
                f.create_dataset("mask", data=mask)
        else:
            with h5py.File(root / f"image_{i}.h5", "w") as f:
                f.create_dataset("img", data=img)
                f.create_dataset("mask", data=mask)
    return root
