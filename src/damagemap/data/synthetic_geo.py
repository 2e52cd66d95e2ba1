"""A synthetic georeferenced event on disk (for the demo and tests).

A post-event GeoTIFF, building footprints, and the few label polygons a responder would draw.

Pixels come from :func:`damagemap.data.synthetic.generate_scene`. Files written to ``out_dir``:

``scene.tif``         uint8 RGB GeoTIFF (tiled, DEFLATE, overviews), nodata 0 — valid pixels are
                      1..255 and a small triangle in the north-east corner is nodata
``footprints.gpkg``   every building as a polygon in EPSG:4326 (deliberately not the scene CRS)
                      with ``building_id``, ``damaged`` (truth) and ``part`` (``west``/``east``
                      by the footprint's centre)
``labels.geojson``    EPSG:4326 polygons with ``damage``, only in the WEST (training) part, as a
                      responder draws them in QGIS: one "checked area" (0) over the west part —
                      everything in it not outlined as damage is undamaged —, the rubble outline
                      of every collapsed building in it (1) and a few intact roofs (0). Where
                      polygons overlap the higher class wins (see ``read_geotiff_labels``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely.affinity import affine_transform
from shapely.geometry import MultiPoint, box

from damagemap.data.synthetic import SyntheticScene, generate_scene
from damagemap.io_atomic import atomic_path

RUBBLE_SPILL = 6
"""How far (pixels) rubble spills beyond a collapsed building's footprint in the generator."""
LABEL_CRS = "EPSG:4326"


@dataclass(frozen=True)
class SyntheticEvent:
    """Paths of a written event and where its training (west) part is.

    Attributes:
        scene, footprints, labels: the files (see module docstring).
        train_window: pixel window of the west part (labels lie inside it).
        train_bounds: its ``(minx, miny, maxx, maxy)`` in the scene CRS.
        crs: the scene CRS; ``transform``: its affine as 6 numbers.
        n_buildings, n_damaged: building totals; ``n_labels``: label polygons written.
    """

    scene: Path
    footprints: Path
    labels: Path
    train_window: Window
    train_bounds: tuple[float, float, float, float]
    crs: str
    transform: tuple[float, float, float, float, float, float]
    n_buildings: int
    n_damaged: int
    n_labels: int


def write_synthetic_event(
    out_dir: str | os.PathLike,
    height: int = 1024,
    width: int = 1024,
    seed: int = 0,
    crs: str = "EPSG:32616",
    pixel_size: float = 0.5,
    origin: tuple[float, float] = (500000.0, 4000000.0),
    *,
    train_share: float = 0.5,
    intact_roofs: int = 5,
) -> SyntheticEvent:
    """Generate a scene and write it with footprints and training labels (see module docstring).

    Args:
        out_dir: folder to write into (created).
        height, width: scene size in pixels; ``seed``: generator seed (deterministic).
        crs, pixel_size, origin: georeferencing (``origin`` = top-left corner, CRS units).
        train_share: width share of the west (labelled) part.
        intact_roofs: intact west buildings outlined as 0 (besides the checked area).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sc = generate_scene(height, width, seed=seed)
    transform = Affine(pixel_size, 0.0, origin[0], 0.0, -pixel_size, origin[1])
    split = int(round(width * train_share))
    scene_path = _write_scene(out / "scene.tif", sc, transform, crs)

    to_world = [transform.a, transform.b, transform.d, transform.e, transform.xoff, transform.yoff]
    geoms, parts = [], []
    for f in sc.footprints:
        y0, x0, h, w = f["bbox"]
        geoms.append(affine_transform(box(x0, y0, x0 + w, y0 + h), to_world))
        parts.append("west" if x0 + w / 2 < split else "east")
    fp = gpd.GeoDataFrame(
        {
            "building_id": [f["id"] for f in sc.footprints],
            "damaged": [f["damaged"] for f in sc.footprints],
            "part": parts,
        },
        geometry=geoms,
        crs=crs,
    ).to_crs(LABEL_CRS)
    fp_path = _write_vectors(fp, out / "footprints.gpkg", "GPKG")

    polygons, damage = [_checked_area(sc, split)], [0]
    polygons += _rubble_outlines(sc, split)
    damage += [1] * (len(polygons) - 1)
    roofs = [
        box(x0, y0, x0 + w, y0 + h)
        for y0, x0, h, w in (
            f["bbox"] for f in sc.footprints if not f["damaged"] and f["bbox"][1] + f["bbox"][3] < split
        )
    ]
    polygons += roofs[:intact_roofs]
    damage += [0] * len(roofs[:intact_roofs])
    polygons = [affine_transform(g, to_world) for g in polygons]
    labels = gpd.GeoDataFrame({"damage": damage}, geometry=polygons, crs=crs).to_crs(LABEL_CRS)
    labels_path = _write_vectors(labels, out / "labels.geojson", "GeoJSON")

    x0, y0 = transform @ (0, 0)
    x1, y1 = transform @ (split, height)
    return SyntheticEvent(
        scene=scene_path,
        footprints=fp_path,
        labels=labels_path,
        train_window=Window(0, 0, split, height),
        train_bounds=(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)),
        crs=crs,
        transform=tuple(transform)[:6],
        n_buildings=len(sc.footprints),
        n_damaged=sum(f["damaged"] for f in sc.footprints),
        n_labels=len(labels),
    )


def _write_scene(path: Path, sc: SyntheticScene, transform, crs: str) -> Path:
    """uint8 RGB, valid pixels 1..255, a nodata triangle in the north-east corner."""
    _, height, width = sc.image.shape
    data = (1 + np.rint(np.clip(sc.image, 0, 1) * 254)).astype(np.uint8)
    corner = max(4, min(height, width) // 10)
    rows, cols = np.ogrid[:height, :width]
    data[:, (width - 1 - cols) + rows < corner] = 0
    profile = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=3,
        dtype="uint8",
        crs=crs,
        transform=transform,
        nodata=0,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        photometric="RGB",
    )
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
        factors = [f for f in (2, 4, 8, 16) if min(height, width) // f >= 64]
        if factors:
            dst.build_overviews(factors, Resampling.average)
    return path


def _write_vectors(gdf: gpd.GeoDataFrame, path: Path, driver: str) -> Path:
    with atomic_path(path) as tmp:
        gdf.to_file(tmp, driver=driver, engine="pyogrio", layer=path.stem)
    return path


def _rubble_outlines(sc: SyntheticScene, split: int) -> list:
    """Convex hulls (pixel coordinates) of the rubble of the collapsed buildings centred in the west."""
    height, width = sc.damage.shape
    out = []
    for f in sc.footprints:
        y0, x0, h, w = f["bbox"]
        if not f["damaged"] or x0 + w / 2 >= split:
            continue
        r0, c0 = max(0, y0 - RUBBLE_SPILL), max(0, x0 - RUBBLE_SPILL)
        r1, c1 = min(height, y0 + h + RUBBLE_SPILL), min(width, x0 + w + RUBBLE_SPILL)
        rows, cols = np.nonzero(sc.damage[r0:r1, c0:c1])
        hull = MultiPoint(np.column_stack([cols + c0 + 0.5, rows + r0 + 0.5])).convex_hull
        out.append(hull.buffer(0.5, join_style="mitre"))
    return out


def _checked_area(sc: SyntheticScene, split: int):
    """The west part (pixel coordinates) minus the surroundings of east buildings that reach into it."""
    height = sc.damage.shape[0]
    area = box(0, 0, split, height)
    m = RUBBLE_SPILL + 1
    for y0, x0, h, w in (f["bbox"] for f in sc.footprints):
        if x0 + w / 2 >= split and x0 - m < split:
            area = area.difference(box(x0 - m, y0 - m, x0 + w + m, y0 + h + m))
    return area
