"""A project-written generator of synthetic post-event scenes (for the demo and tests).

A scene is textured ground with roads and vegetation, and rectangular buildings (roof colour,
ridge line, cast shadow). A share of the buildings is *collapsed*: the footprint becomes
rubble (high-frequency multi-coloured texture) spilling irregularly beyond it. Labels: damage
mask (1 = damaged, i.e. rubble pixels), building-footprint mask, and the footprints as
pixel-coordinate rectangles with a ``damaged`` flag. ``style`` shifts palette and
illumination so that different "regions" form real domain shifts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from damagemap.types import Sample


@dataclass
class SceneStyle:
    """Palette and illumination of a synthetic region."""

    ground: tuple[float, float, float] = (0.55, 0.50, 0.42)
    vegetation: tuple[float, float, float] = (0.25, 0.40, 0.20)
    road: tuple[float, float, float] = (0.35, 0.35, 0.37)
    roofs: tuple[tuple[float, float, float], ...] = ((0.70, 0.30, 0.25), (0.75, 0.75, 0.72), (0.45, 0.45, 0.50))
    brightness: float = 1.0


STYLES = {
    "north": SceneStyle(),
    "south": SceneStyle(
        ground=(0.62, 0.55, 0.40),
        vegetation=(0.30, 0.38, 0.18),
        roofs=((0.80, 0.55, 0.35), (0.85, 0.85, 0.80), (0.35, 0.40, 0.55)),
        brightness=1.1,
    ),
}


@dataclass
class SyntheticScene:
    """A generated scene: ``image`` float32 [3,H,W] in [0,1], labels and footprints."""

    image: np.ndarray
    damage: np.ndarray
    buildings: np.ndarray
    footprints: list[dict] = field(default_factory=list)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return n / (n.std() + 1e-8)


def generate_scene(
    height: int,
    width: int,
    seed: int = 0,
    style: SceneStyle | str = "north",
    building_density: float = 1.0,
    damaged_share: float = 0.35,
) -> SyntheticScene:
    """Generate one scene; deterministic for a given seed."""
    st = STYLES[style] if isinstance(style, str) else style
    rng = np.random.default_rng(seed)
    img = np.empty((3, height, width), np.float32)
    base = _smooth_noise(rng, (height, width), 12)
    veg = _smooth_noise(rng, (height, width), 20) > 0.8
    for c in range(3):
        img[c] = st.ground[c] + 0.05 * base + 0.03 * rng.standard_normal((height, width))
        img[c][veg] = st.vegetation[c] + 0.06 * base[veg]
    # roads on a loose grid
    for y in range(rng.integers(20, 60), height, int(rng.integers(140, 220))):
        img[:, y : y + 10] = np.array(st.road, np.float32)[:, None, None]
    for x in range(rng.integers(20, 60), width, int(rng.integers(140, 220))):
        img[:, :, x : x + 10] = np.array(st.road, np.float32)[:, None, None]
    damage = np.zeros((height, width), np.uint8)
    buildings = np.zeros((height, width), np.uint8)
    footprints: list[dict] = []
    n = int(building_density * height * width / 2500)
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(12, 34, 2))
        y0, x0 = int(rng.integers(2, max(3, height - h - 2))), int(rng.integers(2, max(3, width - w - 2)))
        if buildings[max(0, y0 - 4) : y0 + h + 4, max(0, x0 - 4) : x0 + w + 4].any():
            continue
        damaged = bool(rng.random() < damaged_share)
        roof = np.array(st.roofs[int(rng.integers(len(st.roofs)))], np.float32)
        buildings[y0 : y0 + h, x0 : x0 + w] = 1
        if damaged:
            spill = ndimage.binary_dilation(np.pad(np.ones((h, w), bool), 4), iterations=2)
            spill &= rng.random(spill.shape) < 0.85
            ys, xs = np.nonzero(spill)
            ys, xs = ys + y0 - 4, xs + x0 - 4
            ok = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
            ys, xs = ys[ok], xs[ok]
            rubble = rng.random((3, len(ys))).astype(np.float32)
            img[:, ys, xs] = 0.35 * roof[:, None] + 0.5 * rubble + 0.1
            damage[ys, xs] = 1
        else:
            img[:, y0 : y0 + h, x0 : x0 + w] = roof[:, None, None] + 0.02 * rng.standard_normal((3, h, w))
            img[:, y0 + h // 2, x0 : x0 + w] *= 0.8  # ridge line
            sy, sx = slice(y0 + h, min(height, y0 + h + 4)), slice(x0 + 3, min(width, x0 + w + 3))
            img[:, sy, sx] *= 0.55  # cast shadow
        footprints.append({"id": len(footprints), "bbox": (y0, x0, h, w), "damaged": damaged})
    img = np.clip(img * st.brightness, 0, 1).astype(np.float32)
    return SyntheticScene(img, damage, buildings, footprints)


def synthetic_tiles(domain: str, n: int, size: int = 128, seed: int = 0, damaged_share: float = 0.35) -> list[Sample]:
    """``n`` labelled tiles of one synthetic region (style = ``domain`` if known)."""
    style = domain if domain in STYLES else "north"
    samples = []
    for i in range(n):
        sc = generate_scene(size, size, seed=seed * 1000 + i, style=style, damaged_share=damaged_share)
        samples.append(
            Sample(sc.image, sc.damage.astype(np.int64), domain, f"{domain}_{i:03d}", buildings=sc.buildings)
        )
    return samples
