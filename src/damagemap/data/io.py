"""Reading single image and mask files into arrays.

Images come back as float32 ``[C, H, W]`` scaled to [0, 1], masks as int64 ``[H, W]``. Every
failure (missing, truncated, corrupt or unexpected files) raises :class:`InputError` naming the
file.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from damagemap.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
"""File name endings recognised as images (case-insensitive)."""

_ALPHA_MODES = {"RGBA": "RGB", "RGBa": "RGB", "LA": "L", "La": "L", "PA": "RGB"}
_CONVERT_TO_RGB = {"P", "PA", "CMYK", "YCbCr", "LAB", "HSV"}
_MASK_MODES = {"1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N"}
_TIFF_SUFFIXES = (".tif", ".tiff")
_truncation_lock = threading.Lock()


def read_image(path: str | Path, bands: Sequence[int] | None = None) -> np.ndarray:
    """Read an image file as float32 ``[C, H, W]`` in [0, 1].

    8-bit data is divided by 255 and 16-bit data by 65535; float data is kept as is. Grayscale
    gives one band, an alpha channel is dropped and palette images are expanded to RGB.
    Multi-band TIFFs that Pillow cannot decode are read with rasterio.

    Args:
        path: PNG, JPEG or TIFF file.
        bands: 0-based band indices to keep, in the given order (``None`` keeps all).

    Returns:
        The image as a float32 array ``[C, H, W]``.

    Raises:
        InputError: the file is missing or cannot be decoded, holds NaN/inf values, or
            ``bands`` refers to bands the file does not have.
    """
    path = Path(path)
    try:
        img = _load(path)
    except _Unsupported:
        arr = _read_with_rasterio(path)
    else:
        if img.mode in _CONVERT_TO_RGB:
            img = img.convert("RGBA" if img.mode == "PA" else "RGB")
        arr = np.asarray(img)
        if img.mode in _ALPHA_MODES:
            arr = arr[..., :-1]
        arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    image = _scale(arr, path)
    if bands is not None:
        image = _select_bands(image, bands, path)
    return np.ascontiguousarray(image)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a single-band mask of class indices as int64 ``[H, W]``.

    Args:
        path: a single-band PNG (or TIFF) whose pixel values are class indices.

    Raises:
        InputError: the file is missing, cannot be decoded, is not single-band (e.g. an RGB
            colour-coded mask) or holds negative values.
    """
    path = Path(path)
    try:
        img = _load(path)
    except _Unsupported as err:
        raise InputError(path, "cannot decode mask: unsupported TIFF layout") from err
    if img.mode not in _MASK_MODES:
        raise InputError(
            path,
            f"a mask must be a single-band image of class indices, got mode {img.mode!r} "
            f"with {len(img.getbands())} band(s)",
        )
    mask = np.asarray(img).astype(np.int64)
    if mask.size and mask.min() < 0:
        raise InputError(path, f"mask holds negative values (min {mask.min()})")
    return mask


class _Unsupported(Exception):
    """Pillow cannot identify the file, but another reader may (multi-band TIFF)."""


def _load(path: Path) -> Image.Image:
    """Open and fully decode ``path`` with Pillow, translating failures into InputError."""
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with Image.open(path) as img, _strict_decoding():
            img.load()  # force full decode so truncated files fail here, not later
            return img
    except UnidentifiedImageError as err:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            raise _Unsupported from err
        raise InputError(path, f"cannot decode image: {err}") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(path, f"cannot decode image: {err}") from err


@contextmanager
def _strict_decoding() -> Iterator[None]:
    """Temporarily clear Pillow's global LOAD_TRUNCATED_IMAGES so truncation is an error."""
    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _truncation_lock:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = True


def _read_with_rasterio(path: Path) -> np.ndarray:
    """Read all bands of a raster that Pillow cannot decode, as ``[C, H, W]``."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return src.read()
    except RasterioError as err:
        raise InputError(path, f"cannot decode image: {err}") from err


def _scale(arr: np.ndarray, path: Path) -> np.ndarray:
    """Convert raw pixel values to float32 in [0, 1] according to their data type."""
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise InputError(path, "image holds NaN or infinite values")
        return out
    if arr.dtype.kind in "ui":
        if arr.dtype.itemsize == 1:
            return arr.astype(np.float32) / 255.0
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise InputError(path, f"integer image values {lo}..{hi} are outside 0..65535")
        return arr.astype(np.float32) / 65535.0
    raise InputError(path, f"unsupported pixel data type {arr.dtype}")


def _select_bands(image: np.ndarray, bands: Sequence[int], path: Path) -> np.ndarray:
    """Pick ``bands`` (0-based) from a ``[C, H, W]`` image."""
    bands = list(bands)
    n = image.shape[0]
    bad = [b for b in bands if not 0 <= int(b) < n]
    if not bands or bad:
        raise InputError(path, f"cannot select bands {bands}: the image has {n} band(s) (0..{n - 1})")
    return image[bands]
