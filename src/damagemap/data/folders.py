"""Reader for datasets laid out as ``<root>/<domain>/{images,masks}/<id>.<ext>``.

Building footprints (used by DPT's patch labels, docs/methods.md §1) are optional, per domain:
``<domain>/buildings/<id>.<ext>`` masks (any non-zero value = building), or one vector file
``<domain>/footprints.{gpkg,geojson,shp}`` (any CRS) rasterised onto each image's grid — the
images must then be georeferenced GeoTIFFs. Pixels a footprint touches count as building, as in
the reference code (``all_touched``).

Pre-event images (pair recipes, ``input.pair``) are ``<domain>/pre/<id>.<ext>``, on the same
pixel grid as the post-event image of the same id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from damagemap.data.io import IMAGE_SUFFIXES, read_image, read_mask
from damagemap.errors import InputError
from damagemap.types import IGNORE_INDEX, GeoInfo, Sample

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    import geopandas as gpd

BUILDINGS_DIR = "buildings"
PRE_DIR = "pre"
FOOTPRINT_FILES = ("footprints.gpkg", "footprints.geojson", "footprints.shp")


def read_image_mask_folders(
    root: str | Path,
    domains: Sequence[str] | None = None,
    mask_values: Mapping[int, int] | None = None,
    num_classes: int | None = None,
    *,
    images_dir: str = "images",
    masks_dir: str = "masks",
    pre: bool = False,
) -> list[Sample]:
    """Read paired images and masks, one sub-folder per domain.

    The layout is ``<root>/<domain>/<images_dir>/<id>.<ext>`` with the mask of each image at
    ``<root>/<domain>/<masks_dir>/<id>.<ext>``. If ``root`` itself holds ``<images_dir>/``,
    it is read as a single domain named after the folder.

    Args:
        root: dataset folder.
        domains: domain folder names to read (default: every sub-folder with ``<images_dir>/``).
        mask_values: optional map from raw mask values to class indices, e.g.
            ``{0: 0, 255: 1}``; any raw value not in the map is an error.
        num_classes: if given, mask values (after mapping) must be below it or 255 (ignore).
        images_dir: name of the image sub-folder in each domain.
        masks_dir: name of the mask sub-folder in each domain.
        pre: also read each image's pre-event image from ``<domain>/pre/`` (``Sample.pre``).

    Returns:
        Samples sorted by domain, then id; ``domain`` is the folder name, ``id`` the file stem,
        and ``meta`` holds ``image_path`` and ``mask_path``.

    Raises:
        InputError: a folder is missing or empty, an image has no mask, a mask's size differs
            from its image, or a mask holds values outside ``mask_values`` / ``num_classes``.
    """
    root = Path(root)
    samples = []
    for domain_dir in domain_dirs(
        root,
        domains,
        lambda d: (d / images_dir).is_dir(),
        f"no domain folders found (expected <root>/<domain>/{images_dir}/<id>.png)",
    ):
        images = _files_by_stem(domain_dir / images_dir, required=True)
        masks = _files_by_stem(domain_dir / masks_dir, required=False)
        buildings = _Buildings(domain_dir)
        pres = _files_by_stem(domain_dir / PRE_DIR, required=False) if pre else {}
        for stem, image_path in images.items():
            mask_path = masks.get(stem)
            if mask_path is None:
                expected = domain_dir / masks_dir / f"{stem}.png"
                raise InputError(image_path, f"no mask for this image: expected {expected}")
            sample = _read_pair(image_path, mask_path, domain_dir.name, stem, mask_values, num_classes)
            if pre:
                sample.pre = _read_pre(pres, stem, image_path, domain_dir, sample.image.shape)
                sample.meta["pre_image_path"] = str(pres[stem])
            sample.buildings = buildings.mask(stem, image_path, sample.image.shape[1:])
            if sample.buildings is not None and sample.geo is None:
                sample.geo = buildings.geo(image_path)
            samples.append(sample)
    _check_band_counts(samples)
    if mask_values is None and num_classes == 2:
        _binary_0_255(samples, root)
    return samples


def _check_band_counts(samples: list[Sample]) -> None:
    """Every image of a dataset has the first image's band count (else one line naming both files)."""
    if not samples:
        return
    first = samples[0]
    for s in samples[1:]:
        if s.image.shape[0] != first.image.shape[0]:
            raise InputError(
                s.meta["image_path"],
                f"has {s.image.shape[0]} band(s) but {first.meta['image_path']} has {first.image.shape[0]}: "
                "all images of a dataset need the same bands",
            )


def _binary_0_255(samples: list[Sample], root: Path) -> None:
    """Binary masks stored as 0/255 (no 1 anywhere) are read as 0 = background, 255 = damage, and said so.

    Otherwise 255 is the ignore index and every damage pixel would silently drop out of training.
    """
    masks = [s.mask for s in samples if s.mask is not None]
    if not masks or any((m == 1).any() for m in masks) or not any((m == IGNORE_INDEX).any() for m in masks):
        return
    for m in masks:
        m[m == IGNORE_INDEX] = 1
    logger.warning(
        "%s: the masks hold only 0 and 255 (no 1): read as binary, 0 = background and 255 = damage "
        "(a 2-class recipe; 255 is the ignore value only where the masks also use 1)",
        root,
    )


class _Buildings:
    """The optional building footprints of one domain folder (see the module docstring)."""

    def __init__(self, domain_dir: Path) -> None:
        self.masks = _files_by_stem(domain_dir / BUILDINGS_DIR, required=False)
        self.folder = domain_dir / BUILDINGS_DIR
        self.vectors = next((domain_dir / n for n in FOOTPRINT_FILES if (domain_dir / n).is_file()), None)
        if self.masks and self.vectors is not None:
            raise InputError(domain_dir, f"both {BUILDINGS_DIR}/ masks and {self.vectors.name} are given; keep one")
        self._frames: dict[str, gpd.GeoDataFrame] = {}

    def mask(self, stem: str, image_path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
        """uint8 building mask (1 = building) of one image, or ``None`` without footprints."""
        if self.masks:
            path = self.masks.get(stem)
            if path is None:
                raise InputError(
                    image_path, f"no building mask for this image: expected {self.folder / (stem + '.png')}"
                )
            mask = read_mask(path)
            if mask.shape != tuple(shape):
                raise InputError(
                    path, f"building mask is {mask.shape[0]}x{mask.shape[1]} but its image is {shape[0]}x{shape[1]}"
                )
            return (mask > 0).astype(np.uint8)
        if self.vectors is None:
            return None
        from rasterio.features import rasterize

        from damagemap.geo.vector import read_vectors

        crs, transform = self._georef(image_path)
        key = crs.to_string()
        if key not in self._frames:
            self._frames[key] = read_vectors(self.vectors, crs, "building footprints")
        frame = self._frames[key]
        geoms = [g for g in frame.geometry if g is not None and not g.is_empty]
        if not geoms:
            return np.zeros(shape, np.uint8)
        return rasterize(
            geoms, out_shape=tuple(shape), transform=transform, fill=0, default_value=1, all_touched=True, dtype="uint8"
        )

    def _georef(self, image_path: Path) -> tuple:
        import warnings

        import rasterio
        from rasterio.errors import NotGeoreferencedWarning, RasterioError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(image_path) as src:
                    crs, transform = src.crs, src.transform
        except RasterioError as exc:
            raise InputError(image_path, f"cannot read its georeference: {exc}") from None
        if crs is None:
            raise InputError(
                image_path,
                f"{self.vectors} gives footprints in map coordinates, but this image has "
                f"no CRS; give georeferenced GeoTIFFs or {BUILDINGS_DIR}/<id>.png masks",
            )
        return crs, transform

    def geo(self, image_path: Path) -> GeoInfo | None:
        """The image's georeference when footprints were rasterised onto it."""
        if self.vectors is None:
            return None
        crs, transform = self._georef(image_path)
        return GeoInfo(crs.to_wkt(), tuple(transform)[:6])


def domain_dirs(
    root: Path, domains: Sequence[str] | None, is_domain: Callable[[Path], bool], expected: str
) -> list[Path]:
    """Resolve the domain folders to read.

    The named ones (checked to exist), ``root`` itself if it is a domain, else its non-hidden
    subfolders that are; ``expected`` describes the layout in the error when none is found.
    """
    if not root.is_dir():
        raise InputError(root, "dataset folder not found")
    if domains is not None:
        missing = [d for d in domains if not (root / d).is_dir()]
        if missing:
            raise InputError(root, f"domain folder(s) not found: {', '.join(missing)}")
        return [root / d for d in domains]
    if is_domain(root):
        return [root]
    found = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and is_domain(d))
    if not found:
        raise InputError(root, expected)
    return found


def _files_by_stem(folder: Path, required: bool) -> dict[str, Path]:
    """Map file stem to path for the image files in ``folder``, sorted by stem."""
    if not folder.is_dir():
        if required:
            raise InputError(folder, "folder not found")
        return {}
    files: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.suffix.lower() not in IMAGE_SUFFIXES or f.name.startswith("."):
            continue
        if f.stem in files:
            other = files[f.stem].name
            raise InputError(f, f"two files share the id {f.stem!r}: {other} and {f.name}")
        files[f.stem] = f
    if required and not files:
        endings = ", ".join(IMAGE_SUFFIXES)
        raise InputError(folder, f"no images found in folder (expected files ending in {endings})")
    return files


def _read_pre(pres: dict[str, Path], stem: str, image_path: Path, domain_dir: Path, shape: tuple) -> np.ndarray:
    """The pre-event image of ``stem``: present, readable and the size and band count of the post image."""
    path = pres.get(stem)
    if path is None:
        raise InputError(image_path, f"no pre-event image for this image: expected {domain_dir / PRE_DIR / stem}.png")
    image = read_image(path)
    if image.shape != shape:
        raise InputError(
            path, f"pre-event image has shape {image.shape} (CxHxW) but its post image {image_path} {shape}"
        )
    return image


def _read_pair(
    image_path: Path,
    mask_path: Path,
    domain: str,
    stem: str,
    mask_values: Mapping[int, int] | None,
    num_classes: int | None,
) -> Sample:
    """Read one image and its mask, and check that they fit together."""
    image = read_image(image_path)
    mask = read_mask(mask_path)
    if mask.shape != image.shape[1:]:
        (mh, mw), (ih, iw) = mask.shape, image.shape[1:]
        raise InputError(mask_path, f"mask is {mh}x{mw} (HxW) but its image {image_path} is {ih}x{iw}")
    if mask_values is not None:
        mask = remap_mask(mask, mask_values, mask_path)
    if num_classes is not None:
        check_classes(mask, num_classes, mask_path)
    meta = {"image_path": str(image_path), "mask_path": str(mask_path)}
    return Sample(image=image, mask=mask, domain=domain, id=stem, meta=meta)


def remap_mask(mask: np.ndarray, mask_values: Mapping[int, int], path: str | Path) -> np.ndarray:
    """Map raw mask values to class indices; raw values missing from the map are an error."""
    values, inverse = np.unique(mask, return_inverse=True)
    unknown = [int(v) for v in values if int(v) not in mask_values]
    if unknown:
        raise InputError(path, f"unexpected mask values {unknown}; expected only {sorted(mask_values)}")
    lut = np.array([mask_values[int(v)] for v in values], dtype=np.int64)
    return lut[inverse].reshape(mask.shape)


def check_classes(mask: np.ndarray, num_classes: int, path: str | Path) -> None:
    """Raise InputError if ``mask`` holds values ``>= num_classes`` other than 255 (ignore)."""
    values = np.unique(mask)
    bad = [int(v) for v in values if v >= num_classes and v != IGNORE_INDEX]
    if bad:
        raise InputError(
            path,
            f"mask values {bad} are not valid classes for num_classes={num_classes} "
            f"(allowed: 0..{num_classes - 1} and {IGNORE_INDEX} = ignore)",
        )
