"""Shared helper of the mapping tests: write a small single-band uint8 GeoTIFF."""

import rasterio
from affine import Affine


def write_uint8(path, arr, transform: Affine, crs: str = "EPSG:32616", nodata: int = 255):
    """Write ``arr`` [H, W] uint8 as band 1 of a GeoTIFF at ``path``; returns ``path``."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[1],
        height=arr.shape[0],
        count=1,
        dtype="uint8",
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(arr, 1)
    return path
