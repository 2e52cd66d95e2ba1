"""Reader for Landslide4Sense HDF5 patches (docs/methods.md §2, Data).

Each patch is an ``.h5`` file with a dataset ``img`` of shape ``[128, 128, 14]`` (float32,
channels last) and a binary ``mask`` ``[128, 128]`` (0 = background, 1 = landslide). The 14
bands, and their 0-based indices as used by the recipe's ``input.bands``:

====  =====  ===============================  ====  =====  ===========================
idx   band   meaning                          idx   band   meaning
====  =====  ===============================  ====  =====  ===========================
0     B1     coastal aerosol                  7     B8     NIR
1     B2     blue                             8     B9     water vapour
2     B3     green                            9     B10    SWIR cirrus
3     B4     red                              10    B11    SWIR 1
4     B5     red edge 1                       11    B12    SWIR 2
5     B6     red edge 2                       12    —      slope (ALOS PALSAR)
6     B7     red edge 3                       13    —      DEM (ALOS PALSAR)
====  =====  ===============================  ====  =====  ===========================

So RGB = B4, B3, B2 = ``input.bands: [3, 2, 1]``.

Two layouts are read:

* official: ``<split>/img/image_N.h5`` (key ``img``) with ``<split>/mask/mask_N.h5`` (key
  ``mask``) — e.g. ``TrainData/img`` and ``TrainData/mask``;
* single folder: ``<split>/*.h5``, each file holding both ``img`` and ``mask``.

``root`` may be such a split folder (one domain named after it) or a folder of them (one domain
per sub-folder, e.g. ``TrainData``, ``ValidData``). Pixel values are returned as stored (the
official files are already scaled floats, not in [0, 1]); use ``input.standardize: dataset``
(or ``image``) to bring them to the encoder's range.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from damagemap.data.folders import check_classes, domain_dirs
from damagemap.errors import InputError
from damagemap.types import Sample

N_BANDS = 14
RGB_BANDS = (3, 2, 1)
"""0-based indices of red (B4), green (B3) and blue (B2)."""
BAND_NAMES = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "slope", "DEM")


def read_landslide4sense(
    root: str | Path, domains: Sequence[str] | None = None, n_bands: int | None = N_BANDS
) -> list[Sample]:
    """Read every labelled Landslide4Sense patch under ``root``.

    Args:
        root: a split folder (``img/`` + ``mask/`` or ``*.h5`` holding both keys) or a folder of
            split folders.
        domains: sub-folder names to read (default: all that hold patches).
        n_bands: required band count of ``img`` (``None`` accepts any).

    Returns:
        Samples sorted by domain then file name; image float32 ``[C, H, W]``, mask int64
        ``[H, W]``; ``meta`` holds ``image_path`` and ``mask_path``.

    Raises:
        InputError: a file is not HDF5, lacks ``img``/``mask`` (the keys found are listed),
            has the wrong shape or NaN/inf values, a mask holds values other than 0/1, or an
            image has no mask file.
    """
    root = Path(root)
    samples = []
    for domain_dir in domain_dirs(
        root,
        domains,
        _is_split,
        "no Landslide4Sense patches found (expected img/image_N.h5 + mask/mask_N.h5, "
        "or .h5 files holding both 'img' and 'mask')",
    ):
        for image_path, mask_path in _pairs(domain_dir):
            samples.append(read_patch(image_path, mask_path, domain_dir.name, n_bands))
    return samples


def read_patch(image_path: Path, mask_path: Path | None, domain: str, n_bands: int | None = N_BANDS) -> Sample:
    """One patch; ``mask_path=None`` reads the mask from the image file itself."""
    image = read_h5_image(image_path, n_bands)
    mpath = mask_path or image_path
    mask = _dataset(mpath, "mask")
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape != image.shape[1:]:
        raise InputError(
            mpath,
            f"'mask' has shape {list(mask.shape)}, expected {list(image.shape[1:])} "
            f"(the size of its image {image_path.name})",
        )
    if not np.isfinite(mask).all():
        raise InputError(mpath, "'mask' holds NaN or inf values")
    mask = mask.astype(np.int64)
    check_classes(mask, 2, mpath)
    meta = {"image_path": str(image_path), "mask_path": str(mpath)}
    return Sample(image=image, mask=mask, domain=domain, id=image_path.stem, meta=meta)


def _dataset(path: Path, key: str) -> np.ndarray:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                found = ", ".join(sorted(f.keys())) or "none"
                raise InputError(path, f"no dataset {key!r} in this .h5 file (keys found: {found})")
            return np.asarray(f[key][()])
    except OSError as exc:
        raise InputError(path, f"cannot read as HDF5 ({exc})") from None


def _is_split(folder: Path) -> bool:
    return (folder / "img").is_dir() or any(folder.glob("*.h5"))


def _pairs(folder: Path) -> list[tuple[Path, Path | None]]:
    """(image file, mask file or None for single-file patches) in file-name order."""
    img_dir = folder / "img"
    if not img_dir.is_dir():
        files = sorted(p for p in folder.glob("*.h5") if not p.name.startswith("."))
        if not files:
            raise InputError(folder, "no .h5 files found")
        return [(p, None) for p in files]
    images = sorted(p for p in img_dir.glob("*.h5") if not p.name.startswith("."))
    if not images:
        raise InputError(img_dir, "no .h5 files found")
    pairs: list[tuple[Path, Path | None]] = []
    for image_path in images:
        stem = image_path.stem
        mask_name = ("mask" + stem[len("image") :] if stem.startswith("image") else stem) + ".h5"
        mask_path = folder / "mask" / mask_name
        if not mask_path.is_file():
            raise InputError(image_path, f"no mask for this image: expected {mask_path}")
        pairs.append((image_path, mask_path))
    return pairs


def read_h5_image(path: str | Path, n_bands: int | None = N_BANDS) -> np.ndarray:
    """The ``img`` dataset of one patch file as float32 ``[C, H, W]`` (checked like the reader)."""
    path = Path(path)
    image = _dataset(path, "img")
    if image.ndim != 3 or (n_bands is not None and image.shape[-1] != n_bands):
        want = f"[H, W, {n_bands}]" if n_bands is not None else "[H, W, C]"
        raise InputError(path, f"'img' has shape {list(image.shape)}, expected {want} (channels last)")
    image = np.ascontiguousarray(np.moveaxis(image.astype(np.float32), -1, 0))
    if not np.isfinite(image).all():
        bad = sorted({int(b) for b in np.nonzero(~np.isfinite(image))[0]})
        raise InputError(path, f"'img' holds NaN or inf values (bands {bad})")
    return image


def read_image_or_h5(path: str | Path) -> np.ndarray:
    """:func:`damagemap.data.io.read_image`, or :func:`read_h5_image` for ``.h5`` files."""
    from damagemap.data.io import read_image

    return read_h5_image(path) if Path(path).suffix.lower() in (".h5", ".hdf5") else read_image(path)
