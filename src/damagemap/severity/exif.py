"""Reading street photos: pixels (EXIF orientation applied) and the EXIF GPS position."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import SupportsFloat

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from damagemap.errors import InputError

_GPS = ExifTags.IFD.GPSInfo
_LAT_REF, _LAT, _LON_REF, _LON = 1, 2, 3, 4  # EXIF GPS tag numbers


def _degrees(value: Iterable[SupportsFloat]) -> float:
    """EXIF (degrees, minutes, seconds) rationals → decimal degrees."""
    d, m, s = (float(v) for v in value)
    return d + m / 60.0 + s / 3600.0


def gps_from_exif(exif: Image.Exif) -> tuple[float, float] | None:
    """``(lat, lon)`` in decimal degrees (south and west negative), or ``None`` without GPS."""
    gps = exif.get_ifd(_GPS)
    if not all(k in gps for k in (_LAT, _LON)):
        return None
    try:
        lat, lon = _degrees(gps[_LAT]), _degrees(gps[_LON])
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if str(gps.get(_LAT_REF, "N")).strip().upper().startswith("S"):
        lat = -lat
    if str(gps.get(_LON_REF, "E")).strip().upper().startswith("W"):
        lon = -lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None  # (0, 0) is what many cameras write without a fix
    return lat, lon


def read_photo(path: str | Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    """A photo as float32 RGB ``[3, H, W]`` in [0, 1] (EXIF orientation applied) and its GPS.

    Raises:
        InputError: the file is missing or not a decodable image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            img = ImageOps.exif_transpose(img).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(path, f"not a readable image ({type(exc).__name__}: {exc})") from None
    image = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return np.ascontiguousarray(image), gps_from_exif(exif)
