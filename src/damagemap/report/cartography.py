"""Map furniture for the report's figures: a metric scale bar, a north arrow, corner coordinates.

Figures are drawn in overview pixel coordinates; these helpers work out metres per pixel and
the direction of true north on the image from the raster's transform and CRS (north need
not be straight up: grid convergence, rotated or geographic grids).
"""

from __future__ import annotations

import math
import os

import numpy as np
import rasterio
from pyproj import CRS, Transformer
from rasterio.transform import Affine

from damagemap.geo.raster import gdal_env
from damagemap.geo.vector import pixel_area_m2


def overview_transform(path: str | os.PathLike, shape: tuple[int, int]) -> tuple[Affine, CRS]:
    """The transform of ``path`` scaled to an overview of ``shape`` ``(h, w)``, and its CRS."""
    with gdal_env(path), rasterio.open(path) as src:
        t = src.transform * Affine.scale(src.width / shape[1], src.height / shape[0])
        return t, CRS.from_user_input(src.crs)


def north_angle(transform: Affine, crs: CRS, shape: tuple[int, int]) -> float:
    """Angle (radians, counter-clockwise from image up) of true north at the image centre."""
    h, w = shape
    x, y = transform * (w / 2, h / 2)
    to_ll = Transformer.from_crs(crs, 4326, always_xy=True)
    lon, lat = to_ll.transform(x, y)
    x2, y2 = to_ll.transform(lon, min(lat + 0.001, 89.9), direction="INVERSE")
    c2, r2 = ~transform * (x2, y2)
    dx, dy = c2 - w / 2, r2 - h / 2
    return math.atan2(-dx, -dy)


def nice_length(max_m: float) -> float:
    """The largest 1/2/5 × 10ⁿ metres not above ``max_m``."""
    if max_m <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(max_m))
    return max(m * base for m in (1, 2, 5) if m * base <= max_m)


def decorate(ax, transform: Affine, crs: CRS, shape: tuple[int, int]) -> None:
    """Draw a scale bar (bottom right) and a north arrow (top right) on an image axis."""
    h, w = shape
    centre = transform * (w / 2, h / 2)
    m_per_px = math.sqrt(pixel_area_m2(transform, crs, at=centre))
    length_m = nice_length(w * m_per_px / 4)
    px = length_m / m_per_px
    x1, y = w * 0.96, h * 0.95
    ax.plot([x1 - px, x1], [y, y], color="black", lw=5, solid_capstyle="butt")
    ax.plot([x1 - px, x1 - px / 2], [y, y], color="white", lw=3, solid_capstyle="butt")
    label = f"{length_m / 1000:g} km" if length_m >= 1000 else f"{length_m:g} m"
    ax.text(
        x1 - px / 2,
        y - h * 0.02,
        label,
        ha="center",
        va="bottom",
        fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
    )
    a = north_angle(transform, crs, shape)
    cx, cy, r = w * 0.93, h * 0.1, min(w, h) * 0.06
    dx, dy = -r * math.sin(a), -r * math.cos(a)
    ax.annotate(
        "",
        xy=(cx + dx, cy + dy),
        xytext=(cx - dx, cy - dy),
        arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.5},
    )
    ax.text(
        cx + 1.6 * dx,
        cy + 1.6 * dy,
        "N",
        ha="center",
        va="center",
        fontsize=9,
        fontweight="bold",
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
    )
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)


def corners(transform: Affine, crs: CRS, width: int, height: int) -> list[tuple[str, float, float, float, float]]:
    """``(corner, x, y, lat, lon)`` of the scene's four corners."""
    names = {"top left": (0, 0), "top right": (width, 0), "bottom right": (width, height), "bottom left": (0, height)}
    to_ll = Transformer.from_crs(crs, 4326, always_xy=True)
    rows = []
    for name, (c, r) in names.items():
        x, y = transform * (c, r)
        lon, lat = to_ll.transform(x, y)
        rows.append((name, float(x), float(y), float(np.round(lat, 6)), float(np.round(lon, 6))))
    return rows
