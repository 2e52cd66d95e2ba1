"""Training tiles from a GeoTIFF and label polygons drawn on it (e.g. in QGIS).

A responder labels a few polygons on the event's own imagery — rubble outlines as damaged,
some intact roofs and open ground as undamaged — and :func:`read_geotiff_labels` turns them
into :class:`~damagemap.types.Sample` tiles to adapt a model in minutes.

The scene is opened, checked and scaled exactly like the mapper does it
(:func:`damagemap.geo.raster.open_scene` / :func:`~damagemap.geo.raster.read_tiles`),
so training tiles and mapped tiles see the same numbers. Only the bounding box of the labelled
polygons is tiled and only tiles holding labelled pixels are read — never the whole scene.
Vectors in any CRS are reprojected to the scene CRS
(:func:`damagemap.geo.vector.read_vectors`). A pixel is labelled when its centre lies in a
polygon; where polygons overlap, the higher class wins. Scene nodata is always ignored.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely.geometry import box

from damagemap.errors import InputError
from damagemap.geo.raster import SceneInfo, SceneReadError, attach_pre_scene, close_datasets, open_scene, read_tiles
from damagemap.geo.sources import SceneLike, resolve_scene
from damagemap.geo.spec import Scale, SceneInputSpec
from damagemap.geo.vector import read_vectors
from damagemap.types import IGNORE_INDEX, GeoInfo, Sample

PathLike = str | os.PathLike


def read_geotiff_labels(
    scene_path: SceneLike,
    labels_path: PathLike,
    *,
    tile: int = 256,
    stride: int | None = None,
    class_column: str = "damage",
    class_map: Mapping[str, int] | None = None,
    buildings_path: PathLike | None = None,
    bands: Sequence[int] | None = None,
    domain: str | None = None,
    scale: Scale = "dtype",
    unlabelled: Literal["ignore", "background"] = "ignore",
    replicate_to: int | None = None,
    pre_path: SceneLike | None = None,
) -> list[Sample]:
    """Cut labelled training tiles from a georeferenced scene.

    Args:
        scene_path: GeoTIFF/COG with a CRS (any band count; uint8/uint16/float): a local file, a
            URL, a ``/vsi…`` path or a STAC item, or a
            :class:`~damagemap.geo.sources.SceneSource` from
            :func:`~damagemap.geo.sources.resolve_scene` (to pick a STAC asset). Only the
            labelled tiles are read, also from a remote scene.
        labels_path: label polygons (GeoJSON/GeoPackage/shapefile, any CRS).
        tile: tile size in scene pixels (smaller scenes give one scene-sized tile).
        stride: step between tiles (default ``tile``); the last row/column of tiles is shifted
            inward so every tile lies inside the scene.
        class_column: the polygons' class attribute: integers 0..254, or names with ``class_map``.
        class_map: class name → index, e.g. ``{"no-damage": 0, "damaged": 1}``; with it, integer
            values are accepted too when they are one of the map's indexes.
        buildings_path: optional building footprints (any CRS) → ``Sample.buildings`` and
            ``Sample.building_ids`` (footprint row + 1).
        bands: 1-based scene bands in model order, as for ``damagemap map --bands`` (None: all).
        domain: ``Sample.domain`` (default: the scene file's stem, or the STAC item's id).
        scale: raw value → [0, 1] scaling, as :attr:`damagemap.geo.spec.SceneInputSpec.scale`.
        unlabelled: pixels outside every polygon are ``"ignore"`` (255) or ``"background"`` (0).
            A polygon of the background class over the labelled extent (a "checked area") makes
            the unlabelled pixels inside it background, while the rest of the scene stays ignored.
        replicate_to: repeat a single-band scene (or selected band) to this many bands, as
            ``damagemap map --replicate-single-band`` does for a panchromatic scene.
        pre_path: the pre-event scene (pair recipes): warped onto the scene's grid (any CRS and
            resolution), same bands and scaling → ``Sample.pre``; its nodata is ignored too.

    Returns:
        One sample per tile with labelled pixels, with ``geo`` (scene CRS WKT, tile transform)
        and ``meta`` (``scene`` as given — the path/URL, or ``ITEM [asset KEY]`` —,
        ``window`` = (row, col, height, width)).

    Raises:
        InputError: naming the file — missing or unreadable scene/labels, a scene or labels
            without CRS, labels that cannot be transformed, polygons outside the scene, unknown
            class names or a missing class column, band indexes out of range, no labelled pixels.
    """
    if unlabelled not in ("ignore", "background"):
        raise ValueError(f"unlabelled must be 'ignore' or 'background', got {unlabelled!r}")
    source = resolve_scene(scene_path)
    scene, spec, n_bands = _open(source, bands, scale, replicate_to)
    if pre_path is not None:
        scene = attach_pre_scene(scene, pre_path, spec, n_bands)
    labels = read_vectors(labels_path, scene.crs, "labels")
    labels = labels[labels.geometry.notna() & ~labels.geometry.is_empty].reset_index(drop=True)
    classes = _classes(labels, labels_path, class_column, class_map)
    footprints = None if buildings_path is None else read_vectors(buildings_path, scene.crs, "building footprints")
    area = _labelled_window(labels, scene, labels_path)
    step = stride or tile
    if tile < 1 or step < 1:
        raise ValueError(f"tile and stride must be >= 1, got {tile}, {stride}")
    size_h, size_w = min(tile, scene.height), min(tile, scene.width)
    order = np.argsort(classes, kind="stable")  # burn higher classes last: they win overlaps
    shapes = list(zip(labels.geometry.to_numpy()[order], classes[order]))
    fill = 0 if unlabelled == "background" else IGNORE_INDEX
    name, wkt = source.stem, scene.crs.to_wkt()
    samples: list[Sample] = []
    try:
        for row in _starts(int(area.row_off), int(area.height), size_h, step, scene.height):
            for col in _starts(int(area.col_off), int(area.width), size_w, step, scene.width):
                transform = scene.transform @ Affine.translation(col, row)
                tile_box = box(*_bounds(transform, size_w, size_h))
                hits = labels.sindex.query(tile_box, predicate="intersects")
                if len(hits) == 0:
                    continue
                mask = _burn(
                    [shapes[i] for i in np.flatnonzero(np.isin(order, hits))], transform, (size_h, size_w), fill
                )
                x, valid = read_tiles(scene.plan, [(row, col)], max(size_h, size_w))
                mask[~valid[0, :size_h, :size_w]] = IGNORE_INDEX
                if not (mask != IGNORE_INDEX).any():
                    continue
                buildings, ids = None, None
                if footprints is not None:
                    hit = footprints.sindex.query(tile_box, predicate="intersects")
                    shapes_ids = [(footprints.geometry.iloc[i], int(i) + 1) for i in hit]  # id = footprint row + 1
                    ids = _burn(shapes_ids, transform, (size_h, size_w), 0, "int32")
                    buildings = (ids > 0).astype(np.uint8)
                samples.append(
                    Sample(
                        image=np.ascontiguousarray(x[0, :n_bands, :size_h, :size_w]),
                        pre=np.ascontiguousarray(x[0, n_bands:, :size_h, :size_w]) if pre_path is not None else None,
                        mask=mask.astype(np.int64),
                        domain=domain or name,
                        id=f"{name}_r{row}_c{col}",
                        geo=GeoInfo(wkt, tuple(transform)[:6]),
                        buildings=buildings,
                        building_ids=ids,
                        meta={"scene": source.name, "window": (row, col, size_h, size_w)},
                    )
                )
    except SceneReadError as exc:
        raise InputError(source.name, exc.problem) from None
    finally:
        close_datasets()
    if not samples:
        raise InputError(labels_path, "no labelled pixels: the polygons cover no valid pixel centre of the scene")
    return samples


def _open(
    path: SceneLike, bands: Sequence[int] | None, scale: Scale, replicate_to: int | None = None
) -> tuple[SceneInfo, SceneInputSpec, int]:
    """Check the scene like the mapper does; every band (or ``bands``) becomes model input.

    Returns the scene, how it is read and the number of model bands.
    """
    if bands is not None:
        bad = [b for b in bands if int(b) < 1]
        if not list(bands) or bad:
            raise InputError(str(path), f"bands must be 1-based band indexes, got {list(bands)}")
        n = replicate_to if replicate_to and len(bands) == 1 else len(bands)
        spec = SceneInputSpec(bands=tuple(bands), scale=scale, replicate_single_band=n != len(bands))
        return open_scene(path, spec, n), spec, n
    probe = open_scene(path, SceneInputSpec(bands=(1,)), 1)  # all checks; tells the band count
    if replicate_to and probe.count == 1:
        spec = SceneInputSpec(scale=scale, replicate_single_band=True)
        return open_scene(path, spec, replicate_to), spec, replicate_to
    spec = SceneInputSpec(scale=scale)
    return open_scene(path, spec, probe.count), spec, probe.count


def _classes(labels: gpd.GeoDataFrame, path: PathLike, column: str, class_map: Mapping[str, int] | None) -> np.ndarray:
    """Each polygon's class index (uint8 0..254)."""
    if column not in labels.columns:
        cols = ", ".join(c for c in map(str, labels.columns) if c != labels.geometry.name)
        raise InputError(path, f"class column {column!r} not found (columns: {cols or 'none'})")
    values = labels[column]
    if values.isna().any():
        raise InputError(path, f"{int(values.isna().sum())} polygon(s) have no value in {column!r}")
    if class_map is not None:
        known = {str(k): int(v) for k, v in class_map.items()}
        if pd.api.types.is_numeric_dtype(values):  # indexes: 0, 1, 1.0 … must be the map's
            known |= {str(float(i)): i for i in set(known.values())} | {str(i): i for i in set(known.values())}
            values = values.map(lambda v: str(float(v)) if float(v) % 1 == 0 else str(v))
        unknown = sorted({str(v) for v in values} - set(known))
        if unknown:
            names = ", ".join(f"{k} ({v})" for k, v in class_map.items())
            raise InputError(path, f"unknown value(s) {unknown} in {column!r}; expected one of: {names}")
        out = np.array([known[str(v)] for v in values], dtype=np.int64)
    elif pd.api.types.is_numeric_dtype(values) and (values % 1 == 0).all():
        out = values.to_numpy().astype(np.int64)
    else:
        raise InputError(
            path,
            f"{column!r} holds names {sorted({str(v) for v in values})[:8]}; pass class_map (name → index) to use them",
        )
    if len(out) and (out.min() < 0 or out.max() >= IGNORE_INDEX):
        raise InputError(path, f"class indexes must be 0..{IGNORE_INDEX - 1}, got {out.min()}..{out.max()}")
    return out


def _labelled_window(labels: gpd.GeoDataFrame, scene: SceneInfo, path: PathLike) -> Window:
    """Pixel window of the pixels whose centres lie in the labels' bounding box (clipped to the scene)."""
    if labels.empty:
        raise InputError(path, "no label polygons (the file is empty or every geometry is empty)")
    extent = _bounds(scene.transform, scene.width, scene.height)
    inside = labels.intersects(box(*extent))
    if not inside.any():
        raise InputError(
            path,
            f"labels do not overlap the scene (labels {np.round(labels.total_bounds, 2).tolist()}, "
            f"scene {np.round(extent, 2).tolist()} in {scene.crs.to_string()})",
        )
    if not inside.all():
        outside = [int(i) + 1 for i in np.flatnonzero(~inside.to_numpy())]
        raise InputError(
            path,
            f"{len(outside)} of {len(labels)} polygon(s) lie outside the scene (feature number(s) "
            f"{outside[:10]}{' …' if len(outside) > 10 else ''}): is this the scene they were drawn on?",
        )
    minx, miny, maxx, maxy = labels.total_bounds
    inv = ~scene.transform
    cols, rows = zip(*(inv @ xy for xy in ((minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy))))
    c0, c1 = max(0, math.ceil(min(cols) - 0.5)), min(scene.width, math.floor(max(cols) - 0.5) + 1)
    r0, r1 = max(0, math.ceil(min(rows) - 0.5)), min(scene.height, math.floor(max(rows) - 0.5) + 1)
    return Window(c0, r0, max(0, c1 - c0), max(0, r1 - r0))


def _starts(offset: int, length: int, size: int, step: int, limit: int) -> list[int]:
    """Tile origins covering ``[offset, offset + length)``, each tile inside ``[0, limit)``."""
    last = max(offset, offset + length - size)
    starts = list(range(offset, last + 1, step))
    if starts[-1] < last:
        starts.append(last)
    return sorted({min(max(0, s), limit - size) for s in starts})


def _bounds(transform: Affine, width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0 = transform @ (0, 0)
    x1, y1 = transform @ (width, height)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _burn(shapes: list, transform: Affine, shape: tuple[int, int], fill: int, dtype: str = "uint8") -> np.ndarray:
    """Rasterise ``(geometry, value)`` pairs (pixel centres; later shapes win)."""
    if not shapes:
        return np.full(shape, fill, dtype=dtype)
    return rasterize(shapes, out_shape=shape, transform=transform, fill=fill, dtype=dtype)
