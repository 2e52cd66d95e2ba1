"""Overlay PNGs: the photo with its predicted classes tinted, and the legend colours."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from damagemap.io_atomic import atomic_path

# fixed colours for the default severity classes; other classes take the palette below
NAMED = {"undamaged": (46, 160, 67), "damaged": (255, 140, 0), "debris": (214, 39, 40)}
PALETTE = [(31, 119, 180), (148, 103, 189), (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207)]


def class_colours(classes: Sequence[str]) -> list[tuple[int, int, int] | None]:
    """RGB per class; the first class (background) is left untinted (``None``)."""
    out: list[tuple[int, int, int] | None] = [None]
    extra = iter(PALETTE * (1 + len(classes) // len(PALETTE)))
    for name in classes[1:]:
        out.append(NAMED.get(name) or next(extra))
    return out


def overlay(image: np.ndarray, labels: np.ndarray, classes: Sequence[str], alpha: float = 0.45) -> np.ndarray:
    """uint8 ``[H, W, 3]``: the [0, 1] ``[3, H, W]`` photo with each class blended in its colour."""
    rgb = image[:3].transpose(1, 2, 0).astype(np.float32)
    out = rgb.copy()
    for k, colour in enumerate(class_colours(classes)):
        if colour is None:
            continue
        sel = labels == k
        out[sel] = (1 - alpha) * rgb[sel] + alpha * (np.array(colour, dtype=np.float32) / 255.0)
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


def save_png(array: np.ndarray, path: Path) -> None:
    """Write a PNG atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
