"""Damaged regions as polygons, vectorised window by window.

The class map is read in ``chunk × chunk`` windows (default 2048 px: ~4 MB of uint8 plus a
16 MB int32 label image), so memory does not grow with the scene. In each window, connected
pixels of one damaged class (4-connectivity) are labelled, polygonised with
``rasterio.features.shapes`` in pixel coordinates, and summarised (pixel count, summed
probability). Regions touching an inner window edge are kept aside and merged across windows
at the end (pieces of the same class sharing an edge are unioned — exact, because pixel
coordinates are integers), then all geometries are mapped to the scene CRS. Memory for that
merge grows with the number of regions crossing window edges, not with the scene's pixels.

Attributes: ``region_id``, ``damage_class``, ``n_pixels``, ``area_m2`` (pixel count × pixel area
in a projected CRS; local UTM for a geographic CRS), ``mean_probability`` (0–1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
import shapely.affinity
from rasterio.features import shapes
from rasterio.transform import Affine
from rasterio.windows import Window
from scipy import ndimage
from shapely.geometry import shape
from shapely.strtree import STRtree

from damagemap.geo.vector import areas_m2, metre_factor
from damagemap.mapping.encoding import LEVELS, NODATA, damaged_mask

COLUMNS = ["region_id", "damage_class", "n_pixels", "area_m2", "mean_probability"]
_FOUR = ndimage.generate_binary_structure(2, 1)


def _windows(width: int, height: int, chunk: int) -> Iterator[Window]:
    for row in range(0, height, chunk):
        for col in range(0, width, chunk):
            yield Window(col, row, min(chunk, width - col), min(chunk, height - row))


def _pieces(cls: np.ndarray, prob: np.ndarray, value: int, window: Window, width: int, height: int):
    """Yield ``(geom_px, n, prob_sum, open)`` for the regions of class ``value`` in a window."""
    labels, n = ndimage.label(cls == value, structure=_FOUR)
    if n == 0:
        return
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    sums = np.bincount(labels.ravel(), weights=prob.ravel().astype(np.float64), minlength=n + 1)
    edge: set[int] = set()  # labels of regions touching an inner window edge
    r0, c0 = int(window.row_off), int(window.col_off)
    h, w = labels.shape
    if r0 > 0:
        edge.update(np.unique(labels[0]))
    if r0 + h < height:
        edge.update(np.unique(labels[-1]))
    if c0 > 0:
        edge.update(np.unique(labels[:, 0]))
    if c0 + w < width:
        edge.update(np.unique(labels[:, -1]))
    offset = Affine.translation(c0, r0)
    for geom, lab in shapes(labels.astype(np.int32), mask=labels > 0, connectivity=4, transform=offset):
        lab = int(lab)
        yield shape(geom), int(counts[lab]), float(sums[lab]), lab in edge


def _merge(open_pieces: list[tuple[int, object, int, float]]) -> list[tuple[int, object, int, float]]:
    """Union pieces of the same class that share an edge (union-find over an STRtree)."""
    if not open_pieces:
        return []
    geoms = [p[1] for p in open_pieces]
    parent = list(range(len(geoms)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist()):
        if i < j and open_pieces[i][0] == open_pieces[j][0] and geoms[i].intersection(geoms[j]).length > 0:
            parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(geoms)):
        groups.setdefault(find(i), []).append(i)
    merged = []
    for root in sorted(groups):
        members = groups[root]
        geom = shapely.union_all([geoms[i] for i in members]) if len(members) > 1 else geoms[members[0]]
        merged.append(
            (
                open_pieces[root][0],
                geom,
                sum(open_pieces[i][2] for i in members),
                sum(open_pieces[i][3] for i in members),
            )
        )
    return merged


def damaged_regions(
    class_path: Path, prob_path: Path, damaged: list[int], *, chunk: int = 2048, batch: int = 5000
) -> Iterator[gpd.GeoDataFrame]:
    """Yield GeoDataFrames of damaged regions (in batches; merged cross-window regions last)."""
    with rasterio.open(class_path) as cls_ds, rasterio.open(prob_path) as prob_ds:
        crs, transform = cls_ds.crs, cls_ds.transform
        width, height = cls_ds.width, cls_ds.height
        to_crs = [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
        px_area = abs(transform.a * transform.e - transform.b * transform.d)
        factor = metre_factor(crs)
        next_id = 1
        rows: list[tuple[int, object, int, float]] = []
        open_pieces: list[tuple[int, object, int, float]] = []

        def frame(items):
            nonlocal next_id
            geoms = gpd.GeoSeries([shapely.affinity.affine_transform(g, to_crs) for _, g, _, _ in items], crs=crs)
            n_px = np.array([n for _, _, n, _ in items], dtype=np.int64)
            area = n_px * px_area * factor**2 if factor is not None else areas_m2(geoms)
            ids = np.arange(next_id, next_id + len(items), dtype=np.int64)
            next_id += len(items)
            return gpd.GeoDataFrame(
                {
                    "region_id": ids,
                    "damage_class": np.array([c for c, _, _, _ in items], dtype=np.int32),
                    "n_pixels": n_px,
                    "area_m2": np.asarray(area, dtype=np.float64),
                    "mean_probability": np.array([s / n / LEVELS for _, _, n, s in items], dtype=np.float64),
                },
                geometry=geoms,
            )

        for window in _windows(width, height, chunk):
            cls = cls_ds.read(1, window=window)
            if not damaged_mask(cls, damaged).any():
                continue
            prob = prob_ds.read(1, window=window)
            prob = np.where(prob == NODATA, 0, prob)
            for value in damaged:
                for geom, n, psum, is_open in _pieces(cls, prob, value, window, width, height):
                    (open_pieces if is_open else rows).append((value, geom, n, psum))
            if len(rows) >= batch:
                yield frame(rows)
                rows = []
        rows.extend(_merge(open_pieces))
        if rows or next_id == 1:
            yield frame(rows)
