"""Damage heat map of a flight: detection points (GeoPackage) and a score-density PNG.

Each detection is placed at the drone's interpolated GPS position at its frame time (the
oblique view's ground footprint is not modelled), weighted by its refined confidence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from damagemap.io_atomic import atomic_path

GPKG = "damage_points.gpkg"
PNG = "heatmap.png"


def write_heatmap(points: pd.DataFrame, track: np.ndarray, out_dir: str | Path, bins: int = 64) -> dict[str, Path]:
    """Write ``damage_points.gpkg`` (layer ``detections``, EPSG:4326) and ``heatmap.png``.

    Args:
        points: one row per detection with ``lat``, ``lon``, ``score`` and any other columns.
        track: ``[N, 2]`` (lat, lon) of the sampled frames (drawn as the flight line).
        out_dir: output folder; files appear under their final names only when complete.
    """
    import geopandas as gpd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gdf = gpd.GeoDataFrame(points, geometry=gpd.points_from_xy(points["lon"], points["lat"]), crs="EPSG:4326")
    with atomic_path(out_dir / GPKG) as tmp:
        gdf.to_file(tmp, layer="detections", driver="GPKG")
    with atomic_path(out_dir / PNG) as tmp_png:
        _plot(points, track, tmp_png, bins)
    return {"gpkg": out_dir / GPKG, "png": out_dir / PNG}


def density(
    lat: np.ndarray,
    lon: np.ndarray,
    weight: np.ndarray,
    extent: tuple[float, float, float, float],
    bins: int = 64,
    sigma: float = 1.5,
) -> np.ndarray:
    """Score-weighted 2-D histogram over ``extent`` (lon0, lon1, lat0, lat1), Gaussian-smoothed; rows = lat."""
    from scipy.ndimage import gaussian_filter

    hist, _, _ = np.histogram2d(lat, lon, bins=bins, range=[extent[2:], extent[:2]], weights=weight)
    return gaussian_filter(hist, sigma)


def _plot(points: pd.DataFrame, track: np.ndarray, path: Path, bins: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = np.concatenate([track[:, 0], points["lat"].to_numpy()])
    lon = np.concatenate([track[:, 1], points["lon"].to_numpy()])
    pad_lat, pad_lon = max(np.ptp(lat) * 0.1, 1e-5), max(np.ptp(lon) * 0.1, 1e-5)
    extent = (lon.min() - pad_lon, lon.max() + pad_lon, lat.min() - pad_lat, lat.max() + pad_lat)
    grid = density(points["lat"].to_numpy(), points["lon"].to_numpy(), points["score"].to_numpy(), extent, bins)
    fig, ax = plt.subplots(figsize=(6, 6))
    im = ax.imshow(grid, origin="lower", extent=extent, cmap="inferno", aspect="auto")
    ax.plot(track[:, 1], track[:, 0], color="cyan", lw=1, label="flight")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(f"damage heat map ({len(points)} detections)")
    fig.colorbar(im, ax=ax, label="Σ confidence (smoothed)")
    ax.legend(loc="upper right")
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
