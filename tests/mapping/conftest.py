"""Fixtures for the mapping tests: small synthetic GeoTIFF scenes written with rasterio."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

ORIGIN = (500000.0, 4000000.0)  # EPSG:32616, 0.5 m pixels
PIXEL = 0.5


def pattern(height: int, width: int) -> np.ndarray:
    """A smooth uint8 pattern in 1..255 (0 is reserved for nodata)."""
    yy, xx = np.mgrid[0:height, 0:width]
    v = 0.5 + 0.5 * np.sin(xx / 23.0) * np.cos(yy / 17.0)
    return (1 + np.rint(v * 254)).astype(np.uint8)


def write_scene(
    path: Path,
    data: np.ndarray | None = None,
    *,
    width: int = 300,
    height: int = 200,
    count: int = 1,
    crs: str | None = "EPSG:32616",
    nodata: float | None = 0,
    nodata_box: tuple[int, int, int, int] | None = (0, 40, 0, 60),
    **profile,
) -> Path:
    """Write a scene; by default band 1 = :func:`pattern`, other bands derived, a nodata box."""
    if data is None:
        base = pattern(height, width)
        data = np.stack([base, base[::-1], base[:, ::-1]][:count] + [base] * max(0, count - 3))
        if nodata_box is not None and nodata is not None:
            r0, r1, c0, c1 = nodata_box
            data[:, r0:r1, c0:c1] = nodata
    count, height, width = data.shape
    kwargs = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=count,
        dtype=data.dtype.name,
        transform=Affine(PIXEL, 0.0, ORIGIN[0], 0.0, -PIXEL, ORIGIN[1]),
        nodata=nodata,
    )
    if crs is not None:
        kwargs["crs"] = crs
    kwargs.update(profile)
    with rasterio.open(path, "w", **kwargs) as dst:
        dst.write(data)
    return path


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    """300×200 uint8 1-band scene, EPSG:32616, nodata 0 in the top-left 40×60 box."""
    return write_scene(tmp_path / "scene.tif")


def content_digests(folder: Path) -> dict[str, str]:
    """sha256 of each output's content without its provenance (which names the scene path and time).

    Rasters: the pixels of band 1 and overviews aside; vector layers: their attribute rows and
    geometries; CSVs: bytes. Pages, styles and summary.json are left out.
    """
    import geopandas as gpd
    import pyogrio
    import rasterio

    out = {}
    for p in sorted(folder.iterdir()):
        if p.suffix == ".tif":
            with rasterio.open(p) as ds:
                out[p.name] = hashlib.sha256(ds.read().tobytes()).hexdigest()
        elif p.suffix == ".csv":
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.suffix == ".gpkg":
            for layer, _ in pyogrio.list_layers(p):
                if layer in ("layer_styles",) or layer.startswith("gpkg"):
                    continue
                df = gpd.read_file(p, layer=layer)
                out[f"{p.name}:{layer}"] = hashlib.sha256(df.to_json().encode()).hexdigest()
    return out


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file directly in ``folder``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def helpers():
    """Access to the module-level helpers from test modules."""

    class H:
        write_scene = staticmethod(write_scene)
        pattern = staticmethod(pattern)
        digests = staticmethod(digests)
        origin = ORIGIN
        pixel = PIXEL

    return H
