"""Reader for the Bijie landslide dataset (docs/methods.md §2, Data).

Assumed layout (as distributed, e.g. ``Bijie-landslide-dataset/``)::

    <root>/landslide/image/<id>.png        RGB patches containing landslides
    <root>/landslide/mask/<id>.png         binary masks: landslide pixels 255 (or 1), else 0
    <root>/non-landslide/image/<id>.png    RGB patches without landslides (no masks)

Other sub-folders (``dem/``, ``polygon/``) are ignored. Non-landslide samples get an all-
background mask. Every sample belongs to one domain, named after ``root``; its id is
``landslide-<id>`` or ``non-landslide-<id>`` so ids from the two folders cannot collide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from damagemap.data.folders import _files_by_stem
from damagemap.data.io import read_image, read_mask
from damagemap.errors import InputError
from damagemap.types import Sample

LANDSLIDE = "landslide"
NON_LANDSLIDE = "non-landslide"


def read_bijie(root: str | Path, include_non_landslide: bool = True) -> list[Sample]:
    """Read the Bijie dataset under ``root`` (landslide samples first, then non-landslide).

    Raises:
        InputError: ``landslide/image`` is missing or empty, a landslide image has no mask, a
            mask's size differs from its image, or a mask holds values other than 0 and 1/255.
    """
    root = Path(root)
    if not (root / LANDSLIDE / "image").is_dir():
        raise InputError(
            root,
            f"not a Bijie dataset folder (expected {LANDSLIDE}/image/ and "
            f"{LANDSLIDE}/mask/, optionally {NON_LANDSLIDE}/image/)",
        )
    domain = root.name
    samples = []
    images = _files_by_stem(root / LANDSLIDE / "image", required=True)
    masks = _files_by_stem(root / LANDSLIDE / "mask", required=False)
    for stem, image_path in images.items():
        mask_path = masks.get(stem)
        if mask_path is None:
            raise InputError(image_path, f"no mask for this image: expected {root / LANDSLIDE / 'mask' / stem}.png")
        image = read_image(image_path)
        mask = binary_mask(read_mask(mask_path), mask_path)
        if mask.shape != image.shape[1:]:
            raise InputError(
                mask_path,
                f"mask is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image "
                f"{image_path} is {image.shape[1]}x{image.shape[2]}",
            )
        samples.append(
            Sample(
                image,
                mask,
                domain,
                f"{LANDSLIDE}-{stem}",
                meta={"image_path": str(image_path), "mask_path": str(mask_path)},
            )
        )
    if include_non_landslide and (root / NON_LANDSLIDE / "image").is_dir():
        for stem, image_path in _files_by_stem(root / NON_LANDSLIDE / "image", required=False).items():
            image = read_image(image_path)
            mask = np.zeros(image.shape[1:], dtype=np.int64)
            samples.append(Sample(image, mask, domain, f"{NON_LANDSLIDE}-{stem}", meta={"image_path": str(image_path)}))
    return samples


def binary_mask(raw: np.ndarray, path: str | Path) -> np.ndarray:
    """0/1 class mask from a raw mask whose foreground is 255 or 1 (not both mixed)."""
    values = {int(v) for v in np.unique(raw)}
    if values <= {0, 1}:
        return raw.astype(np.int64)
    if values <= {0, 255}:
        return (raw == 255).astype(np.int64)
    raise InputError(path, f"unexpected mask values {sorted(values)}; expected 0 and 255 (or 0 and 1)")
