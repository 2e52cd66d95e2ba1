"""Per-building damage from the class and probability rasters.

One row per footprint, in input order. Footprints (already in the scene CRS, see
:func:`damagemap.geo.vector.read_vectors`) are grouped by the ``chunk``-sized cell of the
output their centre falls in; each group's pixels are read in one window, so memory is
bounded by ``chunk`` plus the largest footprint, never by the scene.

A building's pixels are those whose centre lies inside its footprint; footprints smaller than
a pixel fall back to every pixel they touch. Nodata pixels are ignored. Columns:

``building_id``  the ``id_column``'s value, else the footprint's 1-based row number (equal to the
                 ``buildings`` layer's GeoPackage fid)
``status``       ``ok`` · ``outside_scene`` · ``nodata`` (only nodata pixels) · ``no_geometry``
``n_pixels``     valid pixels of the building
``damaged_fraction``  share of them classed damaged (NaN unless ``ok``)
``mean_probability``  mean damage probability, 0–1 (NaN unless ``ok``)
``damage_class`` 0 = not damaged; ≥1 = damaged if ``damaged_fraction ≥ fraction_threshold``
                 (binary models: 1; K-class models: the most frequent damaged class among its
                 damaged pixels); −1 = unknown (status not ``ok``)
``x``, ``y``     a point inside the footprint (its representative point, scene CRS), for the CSV
``lon``, ``lat`` the same point in WGS 84 degrees

Then every attribute of the footprint file, in its order; one whose name is one of the columns
above (e.g. a footprint ``status``) is kept as ``fp_<name>`` (:data:`CLASH_PREFIX`).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.windows import Window

from damagemap.errors import InputError
from damagemap.geo.vector import inside, lonlat, pixel_window
from damagemap.mapping.encoding import LEVELS, NODATA, damaged_mask

CLASH_PREFIX = "fp_"
COLUMNS = [
    "building_id",
    "status",
    "n_pixels",
    "damaged_fraction",
    "mean_probability",
    "damage_class",
    "x",
    "y",
    "lon",
    "lat",
]


def building_ids(gdf: gpd.GeoDataFrame, id_column: str | None, source: Path | str | None) -> pd.Series:
    """The ``id_column``'s values, else 1..n (the GeoPackage fid of the ``buildings`` layer)."""
    if id_column is not None:
        if id_column not in gdf.columns:
            raise InputError(source, f"id column {id_column!r} not found (columns: {', '.join(map(str, gdf.columns))})")
        return gdf[id_column].reset_index(drop=True)
    return pd.Series(np.arange(1, len(gdf) + 1, dtype=np.int64), name="building_id")


def footprint_attributes(gdf: gpd.GeoDataFrame) -> pd.DataFrame:
    """The footprints' own attributes, renamed ``fp_<name>`` where they clash with :data:`COLUMNS`."""
    attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name)).reset_index(drop=True)
    taken = set(COLUMNS)
    renamed = {}
    for name in attrs.columns:
        if str(name) in taken or str(name).lower() == "fid":  # fid: the GeoPackage's own key
            new = CLASH_PREFIX + str(name)
            while new in taken or new in attrs.columns:
                new = CLASH_PREFIX + new
            renamed[name] = new
        taken.add(renamed.get(name, str(name)))
    return attrs.rename(columns=renamed)


def building_damage(
    footprints: gpd.GeoDataFrame,
    class_path: Path,
    prob_path: Path,
    damaged: list[int],
    *,
    fraction_threshold: float = 0.5,
    id_column: str | None = None,
    source: Path | str | None = None,
    chunk: int = 1024,
) -> gpd.GeoDataFrame:
    """Damage statistics for every footprint (see module docstring for the columns)."""
    n = len(footprints)
    geoms = footprints.geometry.reset_index(drop=True)
    status = np.full(n, "outside_scene", dtype=object)
    n_pix = np.zeros(n, dtype=np.int64)
    frac = np.full(n, np.nan)
    mean_p = np.full(n, np.nan)
    dclass = np.full(n, -1, dtype=np.int32)
    with rasterio.open(class_path) as cls_ds, rasterio.open(prob_path) as prob_ds:
        transform, width, height = cls_ds.transform, cls_ds.width, cls_ds.height
        groups: dict[tuple[int, int], list[tuple[int, Window]]] = {}
        for i, geom in enumerate(geoms):
            if geom is None or geom.is_empty:
                status[i] = "no_geometry"
                continue
            win = pixel_window(geom.bounds, transform, width, height)
            if win is None:
                continue
            key = (int(win.row_off + win.height / 2) // chunk, int(win.col_off + win.width / 2) // chunk)
            groups.setdefault(key, []).append((i, win))
        for key in sorted(groups):
            members = groups[key]
            r0 = min(int(w.row_off) for _, w in members)
            c0 = min(int(w.col_off) for _, w in members)
            r1 = max(int(w.row_off + w.height) for _, w in members)
            c1 = max(int(w.col_off + w.width) for _, w in members)
            group_win = Window(c0, r0, c1 - c0, r1 - r0)
            cls_all = cls_ds.read(1, window=group_win)
            prob_all = prob_ds.read(1, window=group_win)
            for i, win in members:
                ys = slice(int(win.row_off) - r0, int(win.row_off + win.height) - r0)
                xs = slice(int(win.col_off) - c0, int(win.col_off + win.width) - c0)
                cls, prob = cls_all[ys, xs], prob_all[ys, xs]
                mask = inside(geoms[i], win, transform)
                if not mask.any():
                    mask = inside(geoms[i], win, transform, all_touched=True)
                if not mask.any():
                    continue
                ok = mask & (cls != NODATA)
                count = int(ok.sum())
                n_pix[i] = count
                if count == 0:
                    status[i] = "nodata"
                    continue
                status[i] = "ok"
                values = cls[ok]
                hit = damaged_mask(values, damaged)
                frac[i] = hit.mean()
                mean_p[i] = prob[ok].astype(np.float64).mean() / LEVELS
                if frac[i] >= fraction_threshold:
                    dclass[i] = int(np.bincount(values[hit]).argmax())
                else:
                    dclass[i] = 0
    has_geom = (geoms.notna() & ~geoms.is_empty).to_numpy()
    x, y = np.full(n, np.nan), np.full(n, np.nan)
    if has_geom.any():
        points = geoms[has_geom].representative_point()
        x[has_geom], y[has_geom] = points.x.to_numpy(), points.y.to_numpy()
    lon, lat = lonlat(x, y, footprints.crs)
    table = {
        "building_id": building_ids(footprints, id_column, source),
        "status": status.astype(str),
        "n_pixels": n_pix,
        "damaged_fraction": frac,
        "mean_probability": mean_p,
        "damage_class": dclass,
        "x": x,
        "y": y,
        "lon": lon,
        "lat": lat,
    }
    frame = pd.concat([pd.DataFrame(table), footprint_attributes(footprints)], axis=1)
    return gpd.GeoDataFrame(frame, geometry=geoms.to_numpy(), crs=footprints.crs)
