"""Zonal statistics over a regular grid (cell size in metres) or given zone polygons.

Columns per zone (plus ``grid_row``/``grid_col`` for the grid, or the zone file's own attributes):

``zone_id``                  grid: row-major index; zones: ``id_column``/``zone_id``/``id`` or the row index
``valid_pixels``             pixels with data (centre inside the zone)
``damaged_pixels``           of which classed damaged
``damaged_pixel_share``      damaged / valid pixels (NaN if no valid pixels)
``damaged_area_m2``          damaged pixels × pixel area in m²
``building_count``           footprints whose representative point lies in the zone (each
                             building is counted in exactly one zone)
``assessed_building_count``  of which had valid pixels (status ``ok``)
``damaged_building_count``   of which classed damaged (``damage_class`` ≥ 1)
``share_damaged``            damaged / assessed buildings (NaN if none)
``x``, ``y``                 the zone's centroid (scene CRS)
``lon``, ``lat``             the centroid in WGS 84 degrees

Without footprints the building columns are NaN. The regular grid starts at the scene's
top-left corner; in a geographic CRS it is laid out in the local UTM zone and reprojected.
Zone pixels are read in windows of at most ``chunk × chunk`` pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.windows import Window
from shapely.geometry import box

from damagemap.errors import ConfigError
from damagemap.geo.vector import inside, lonlat, metre_factor, pixel_area_m2, pixel_window
from damagemap.mapping.encoding import NODATA, damaged_mask


def regular_grid(crs, transform, width: int, height: int, grid_m: float) -> gpd.GeoDataFrame:
    """Square cells of ``grid_m`` metres covering the scene, in the scene CRS."""
    if not grid_m > 0:
        raise ConfigError(f"grid_m must be > 0 metres, got {grid_m}")
    x0, y1 = transform @ (0, 0)
    x1, y0 = transform @ (width, height)
    minx, maxx, miny, maxy = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    scene = gpd.GeoSeries([box(minx, miny, maxx, maxy)], crs=crs)
    factor = metre_factor(crs)
    work_crs = crs if factor is not None else scene.estimate_utm_crs()
    size = grid_m / factor if factor is not None else grid_m
    bx0, by0, bx1, by1 = scene.to_crs(work_crs).total_bounds
    n_cols, n_rows = (
        max(1, math.ceil((bx1 - bx0) / size - 1e-9)),
        max(1, math.ceil((by1 - by0) / size - 1e-9)),
    )
    cells, rows, cols = [], [], []
    for j in range(n_rows):
        for i in range(n_cols):
            cells.append(box(bx0 + i * size, by1 - (j + 1) * size, bx0 + (i + 1) * size, by1 - j * size))
            rows.append(j)
            cols.append(i)
    grid = gpd.GeoDataFrame({"grid_row": rows, "grid_col": cols}, geometry=cells, crs=work_crs)
    if factor is None:
        grid = grid.to_crs(crs)
        grid = grid[grid.intersects(scene.iloc[0])].reset_index(drop=True)
    grid.insert(0, "zone_id", np.arange(len(grid), dtype=np.int64))
    return grid


def _pixel_counts(geom, cls_ds, damaged: list[int], chunk: int) -> tuple[int, int]:
    win = pixel_window(geom.bounds, cls_ds.transform, cls_ds.width, cls_ds.height)
    if win is None:
        return 0, 0
    valid = hit = 0
    r0, c0, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
    for row in range(r0, r0 + h, chunk):
        for col in range(c0, c0 + w, chunk):
            sub = Window(col, row, min(chunk, c0 + w - col), min(chunk, r0 + h - row))
            mask = inside(geom, sub, cls_ds.transform)
            if not mask.any():
                continue
            cls = cls_ds.read(1, window=sub)[mask]
            valid += int((cls != NODATA).sum())
            hit += int(damaged_mask(cls, damaged).sum())
    return valid, hit


def zonal_stats(
    zones: gpd.GeoDataFrame,
    class_path: Path,
    damaged: list[int],
    buildings: gpd.GeoDataFrame | None = None,
    *,
    id_column: str | None = None,
    chunk: int = 2048,
) -> gpd.GeoDataFrame:
    """Statistics for every zone (see module docstring); zones must be in the scene CRS."""
    zones = zones.reset_index(drop=True)
    out = zones.copy()
    if "zone_id" not in out.columns:
        source = id_column if id_column in out.columns else ("id" if "id" in out.columns else None)
        out.insert(0, "zone_id", out[source] if source else np.arange(len(out), dtype=np.int64))
    valid = np.zeros(len(zones), dtype=np.int64)
    hit = np.zeros(len(zones), dtype=np.int64)
    area = np.zeros(len(zones))
    with rasterio.open(class_path) as cls_ds:
        for i, geom in enumerate(zones.geometry):
            if geom is None or geom.is_empty:
                continue
            valid[i], hit[i] = _pixel_counts(geom, cls_ds, damaged, chunk)
            if hit[i]:
                c = geom.centroid
                area[i] = hit[i] * pixel_area_m2(cls_ds.transform, cls_ds.crs, at=(c.x, c.y))
    out["valid_pixels"] = valid
    out["damaged_pixels"] = hit
    out["damaged_pixel_share"] = np.where(valid > 0, hit / np.maximum(valid, 1), np.nan)
    out["damaged_area_m2"] = area
    if buildings is None:
        for name in ("building_count", "assessed_building_count", "damaged_building_count", "share_damaged"):
            out[name] = np.nan
        return _with_centroids(out)
    has_geom = buildings.geometry.notna() & ~buildings.geometry.is_empty
    points = gpd.GeoDataFrame(
        {
            "building": np.flatnonzero(has_geom.to_numpy()),
            "status": buildings["status"][has_geom].to_numpy(),
            "damage_class": buildings["damage_class"][has_geom].to_numpy(),
        },
        geometry=buildings.geometry[has_geom].representative_point().to_numpy(),
        crs=buildings.crs,
    )
    joined = gpd.sjoin(points, zones[[zones.geometry.name]], how="inner", predicate="intersects")
    # a point on a shared cell edge touches two zones: keep the first, so each building counts once
    joined = joined.sort_values(["building", "index_right"]).drop_duplicates("building")
    # integer indicator columns: sums stay integers even when no building falls in any zone
    joined = joined.assign(
        ok=(joined["status"] == "ok").astype(np.int64), dmg=(joined["damage_class"] >= 1).astype(np.int64)
    )
    per_zone = joined.groupby("index_right")
    count = per_zone.size().reindex(range(len(zones)), fill_value=0).to_numpy()
    assessed = per_zone["ok"].sum().reindex(range(len(zones)), fill_value=0)
    dmg = per_zone["dmg"].sum().reindex(range(len(zones)), fill_value=0)
    out["building_count"] = count.astype(np.int64)
    out["assessed_building_count"] = assessed.to_numpy().astype(np.int64)
    out["damaged_building_count"] = dmg.to_numpy().astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["share_damaged"] = np.where(
            out["assessed_building_count"] > 0,
            out["damaged_building_count"] / out["assessed_building_count"],
            np.nan,
        )
    return _with_centroids(out)


def _with_centroids(zones: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Append the centroid's scene-CRS ``x``/``y`` and WGS 84 ``lon``/``lat``."""
    has_geom = (zones.geometry.notna() & ~zones.geometry.is_empty).to_numpy()
    x, y = np.full(len(zones), np.nan), np.full(len(zones), np.nan)
    if has_geom.any():
        c = zones.geometry[has_geom].centroid
        x[has_geom], y[has_geom] = c.x.to_numpy(), c.y.to_numpy()
    zones["x"], zones["y"] = x, y
    zones["lon"], zones["lat"] = lonlat(x, y, zones.crs)
    return zones
