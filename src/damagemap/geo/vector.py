"""Vector helpers shared by the mapper and scene training.

Reading in the scene CRS, areas in m², pixel windows of geometries, and reproducible
GeoPackage writing.

Areas: in a projected CRS, areas are computed in its own units converted to metres (e.g. US
feet are handled). In a geographic CRS (degrees), geometries are reprojected to the local UTM
zone (``GeoSeries.estimate_utm_crs``) and measured there; pixel areas use the pixel at the
geometry's location.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pyproj import CRS
from rasterio.features import geometry_mask
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely.geometry import box

from damagemap.errors import InputError
from damagemap.geo.sources import SceneLike, modified_time, resolve_scene

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

# geopandas, pandas and pyogrio (its own GDAL) cost ~130 MB of resident memory: they are imported
# by the functions that use them, so a map without vector inputs or outputs never loads them.


def read_vectors(path: str | os.PathLike, scene_crs: CRS | object, what: str) -> gpd.GeoDataFrame:
    """Read a GeoJSON / GeoPackage / shapefile and reproject it to ``scene_crs``.

    Raises InputError (naming the file) if it is missing or unreadable, has no CRS, or cannot be
    transformed to the scene CRS.
    """
    import geopandas as gpd
    import pyogrio

    path = Path(path)
    if not path.exists():
        raise InputError(path, f"{what} file not found")
    try:
        gdf = pyogrio.read_dataframe(path)
    except Exception as exc:  # noqa: BLE001 - pyogrio raises several error types
        raise InputError(path, f"cannot read {what} as a vector file (GeoJSON/GeoPackage/shapefile): {exc}") from exc
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name is None:
        raise InputError(path, f"{what} file has no geometry column")
    target = CRS.from_user_input(scene_crs)
    if gdf.crs is None:
        raise InputError(
            path,
            f"{what} have no CRS; assign one (e.g. ogr2ogr -a_srs EPSG:4326) to place them on the scene",
        )
    if CRS.from_user_input(gdf.crs) == target:
        return gdf.set_crs(target, allow_override=True)
    problem = f"cannot transform {what} from CRS {gdf.crs.name!r} to the scene CRS {target.name!r}"
    try:
        out = gdf.to_crs(target)
    except Exception as exc:  # noqa: BLE001 - pyproj raises ProjError/CRSError
        raise InputError(path, f"{problem}: {exc}") from exc
    bounds = out.geometry[~out.geometry.is_empty & out.geometry.notna()].bounds.to_numpy()
    if bounds.size and not np.isfinite(bounds).all():
        raise InputError(path, f"{problem} (non-finite coordinates)")
    return out


def load_vectors(
    src: str | os.PathLike | gpd.GeoDataFrame | None, scene_crs: CRS | object, what: str
) -> gpd.GeoDataFrame | None:
    """:func:`read_vectors` for a path; a GeoDataFrame is reprojected the same way; None stays None."""
    if src is None or not is_geodataframe(src):
        return None if src is None else read_vectors(src, scene_crs, what)
    assert not isinstance(src, (str, os.PathLike))
    if src.crs is None:
        raise InputError(None, f"{what} GeoDataFrame has no CRS")
    try:
        return src.to_crs(CRS.from_user_input(scene_crs))
    except Exception as exc:  # noqa: BLE001
        raise InputError(None, f"cannot transform {what} to the scene CRS: {exc}") from exc


def is_geodataframe(obj: object) -> bool:
    """Whether ``obj`` is a GeoDataFrame (without importing geopandas: none exists before it is imported)."""
    gpd = sys.modules.get("geopandas")
    return gpd is not None and isinstance(obj, gpd.GeoDataFrame)


def warn_if_outside(
    frame: gpd.GeoDataFrame | None, transform: Affine, width: int, height: int, what: str, name: str
) -> None:
    """Log a warning when no feature of ``frame`` (already in the scene CRS) touches the scene."""
    if frame is None or len(frame) == 0:
        return
    x0, y0 = transform * (0, 0)
    x1, y1 = transform * (width, height)
    extent = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    if not frame.geometry.intersects(extent).any():
        logging.getLogger(__name__).warning(
            "%s: none of the %d %s overlaps the scene: the per-building results will be empty", name, len(frame), what
        )


def metre_factor(crs: CRS) -> float | None:
    """Metres per CRS unit for a projected CRS; None for a geographic one."""
    crs = CRS.from_user_input(crs)
    if crs.is_geographic:
        return None
    return float(crs.axis_info[0].unit_conversion_factor) if crs.axis_info else 1.0


def areas_m2(geoms: gpd.GeoSeries) -> np.ndarray:
    """Areas in m² of geometries in their own CRS (local UTM for geographic CRSs)."""
    if len(geoms) == 0:
        return np.zeros(0)
    factor = metre_factor(geoms.crs)
    if factor is not None:
        return geoms.area.to_numpy() * factor**2
    utm = geoms.estimate_utm_crs()
    return geoms.to_crs(utm).area.to_numpy()


def pixel_area_m2(transform: Affine, crs: CRS, at: tuple[float, float] | None = None) -> float:
    """Area of one pixel in m² (near point ``at`` for geographic CRSs)."""
    factor = metre_factor(crs)
    if factor is not None:
        return abs(transform.a * transform.e - transform.b * transform.d) * factor**2
    x, y = at if at is not None else (transform.c, transform.f)
    import geopandas as gpd

    px = box(x, y, x + abs(transform.a), y + abs(transform.e))
    return float(areas_m2(gpd.GeoSeries([px], crs=crs))[0])


def pixel_window(
    bounds: tuple[float, float, float, float], transform: Affine, width: int, height: int
) -> Window | None:
    """The integer pixel window covering ``bounds`` clipped to the raster; None if outside."""
    minx, miny, maxx, maxy = bounds
    if not all(math.isfinite(v) for v in bounds):
        return None
    inv = ~transform
    cols, rows = zip(*(inv @ (x, y) for x, y in ((minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy))))
    c0, c1 = max(0, math.floor(min(cols))), min(width, math.ceil(max(cols)))
    r0, r1 = max(0, math.floor(min(rows))), min(height, math.ceil(max(rows)))
    if c0 >= c1 or r0 >= r1:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def inside(geom, window: Window, transform: Affine, all_touched: bool = False) -> np.ndarray:
    """Boolean ``[h, w]`` mask of the window's pixels inside ``geom`` (pixel centres by default)."""
    wt = transform @ Affine.translation(window.col_off, window.row_off)
    return geometry_mask(
        [geom],
        out_shape=(int(window.height), int(window.width)),
        transform=wt,
        all_touched=all_touched,
        invert=True,
    )


def gpkg_date(scene: SceneLike) -> str:
    """A reproducible ``last_change`` for GeoPackage metadata: the scene's mtime (UTC).

    A local file's mtime; a remote scene's HTTP ``Last-Modified`` (so mapping a served copy gives
    the same bytes as mapping the file); 1970-01-01 when neither is known (e.g. ``/vsis3/``).
    """
    mtime = modified_time(resolve_scene(scene))
    ts = datetime.fromtimestamp(int(mtime or 0), tz=timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def write_layer(
    gdf: gpd.GeoDataFrame | pd.DataFrame,
    path: Path,
    layer: str,
    *,
    date: str,
    append: bool = False,
    geometry_type: str | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write one GeoPackage layer with a fixed ``last_change`` date, so reruns give identical bytes.

    ``gdf`` may be a plain DataFrame (an attribute table); ``metadata`` is set on the dataset.
    """
    import pyogrio

    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": date})
    try:
        pyogrio.write_dataframe(
            gdf,
            path,
            layer=layer,
            driver="GPKG",
            append=append,
            geometry_type=geometry_type,
            promote_to_multi=geometry_type == "MultiPolygon" or None,
            # GeoPackage 1.2: readable by older GDAL/QGIS too (e.g. Debian's ogrinfo)
            dataset_options=None if Path(path).exists() else {"VERSION": "1.2"},
            dataset_metadata=metadata,
        )
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})


def lonlat(x: np.ndarray, y: np.ndarray, crs: CRS | object) -> tuple[np.ndarray, np.ndarray]:
    """Longitude/latitude (WGS 84, degrees) of scene-CRS coordinates (NaN stays NaN)."""
    from pyproj import Transformer

    to_wgs84 = Transformer.from_crs(CRS.from_user_input(crs), CRS.from_epsg(4326), always_xy=True)
    lon, lat = to_wgs84.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.asarray(lon), np.asarray(lat)
