"""Scored photos as map points, and their aggregate per grid cell or per given zone.

Points are WGS84 (EPSG:4326) from the photos' EXIF GPS. Grid cells are squares of ``grid_m``
metres in the local UTM zone of the points (``GeoDataFrame.estimate_utm_crs``), aligned to
multiples of ``grid_m`` in that CRS. Per cell / zone: ``count`` (photos with a defined score),
``n_undefined`` (photos without structure), ``mean`` and ``max`` of the defined scores, and the
same for the pixel score. Photos with an undefined score are counted but never averaged as 0.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import box

from damagemap.errors import InputError
from damagemap.io_atomic import atomic_path, write_text_atomic

WGS84 = "EPSG:4326"


def points_frame(rows: list[dict]) -> gpd.GeoDataFrame:
    """Rows with ``lat``/``lon`` (others dropped) as a WGS84 point layer."""
    located = [r for r in rows if r.get("lat") is not None and r.get("lon") is not None]
    frame = pd.DataFrame(located, columns=list(rows[0]) if rows else ["photo"])
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame.get("lon", []), frame.get("lat", [])), crs=WGS84)


def _aggregate(points: gpd.GeoDataFrame, key: str) -> pd.DataFrame:
    score = pd.to_numeric(points["score"], errors="coerce")
    pixel = pd.to_numeric(points["pixel_score"], errors="coerce")
    g = pd.DataFrame({key: points[key], "score": score, "pixel": pixel}).groupby(key)
    return pd.DataFrame(
        {
            "count": g["score"].count(),
            "n_undefined": g["score"].apply(lambda s: int(s.isna().sum())),
            "mean": g["score"].mean(),
            "max": g["score"].max(),
            "pixel_mean": g["pixel"].mean(),
            "pixel_max": g["pixel"].max(),
        }
    )


def grid_aggregate(points: gpd.GeoDataFrame, grid_m: float) -> gpd.GeoDataFrame:
    """Square cells of ``grid_m`` metres (local UTM) holding at least one photo, with statistics."""
    if grid_m <= 0:
        raise ValueError(f"grid_m must be > 0, got {grid_m}")
    if points.empty:
        return gpd.GeoDataFrame({"cell": []}, geometry=[], crs=WGS84)
    utm = points.estimate_utm_crs()
    local = points.to_crs(utm)
    ix = np.floor(local.geometry.x / grid_m).astype(int)
    iy = np.floor(local.geometry.y / grid_m).astype(int)
    local = local.assign(cell=[f"{a}_{b}" for a, b in zip(ix, iy)])
    stats = _aggregate(local, "cell")
    geoms = []
    for cell in stats.index:
        a, b = (int(v) for v in cell.split("_"))
        geoms.append(box(a * grid_m, b * grid_m, (a + 1) * grid_m, (b + 1) * grid_m))
    return gpd.GeoDataFrame(stats.reset_index(), geometry=geoms, crs=utm)


def zone_aggregate(points: gpd.GeoDataFrame, zones_path: str | Path) -> gpd.GeoDataFrame:
    """Statistics of the photos inside each polygon of ``zones_path`` (any CRS); all zones kept."""
    try:
        zones = gpd.read_file(zones_path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise InputError(zones_path, f"cannot read zones ({type(exc).__name__}: {exc})") from None
    if zones.crs is None:
        raise InputError(zones_path, "zones have no CRS")
    zones = zones.reset_index(drop=True).assign(zone=lambda z: z.index.astype(int))
    joined = gpd.sjoin(points.to_crs(zones.crs), zones[["zone", "geometry"]], predicate="within")
    stats = (
        _aggregate(joined, "zone")
        if not joined.empty
        else pd.DataFrame(columns=["count", "n_undefined", "mean", "max", "pixel_mean", "pixel_max"])
    )
    out = zones.merge(stats, left_on="zone", right_index=True, how="left")
    out[["count", "n_undefined"]] = out[["count", "n_undefined"]].fillna(0).astype(int)
    return out


def write_layers(path: Path, layers: dict[str, gpd.GeoDataFrame]) -> None:
    """Write layers to one GeoPackage atomically (temporary name, then rename)."""
    with atomic_path(path) as tmp:
        for name, frame in layers.items():
            frame.to_file(tmp, layer=name, driver="GPKG")


def write_geojson(path: Path, frame: gpd.GeoDataFrame) -> None:
    """Write a layer as WGS84 GeoJSON atomically."""
    write_text_atomic(path, frame.to_crs(WGS84).to_json(na="null", drop_id=True))
