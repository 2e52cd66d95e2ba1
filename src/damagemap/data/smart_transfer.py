"""Reader for the Smart Transfer layout: ``<root>/<region>/{images,labels}/*.png``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from damagemap.data.folders import read_image_mask_folders
from damagemap.types import Sample

BINARY_LABEL_VALUES = {0: 0, 1: 1, 255: 1}
"""Binary labels are stored as 0/1 or 0/255; both map to 0 (background) / 1 (damage)."""


def read_smart_transfer(root: str | Path, regions: Sequence[str] | None = None) -> list[Sample]:
    """Read a Smart Transfer dataset: one folder per region with ``images/`` and ``labels/``.

    Args:
        root: dataset folder holding one sub-folder per region.
        regions: region folder names to read (default: all).

    Returns:
        Samples with binary masks (0 background, 1 damage); ``domain`` is the region.

    Raises:
        InputError: as :func:`~damagemap.data.folders.read_image_mask_folders`, and for label
            values other than 0, 1 and 255.
    """
    return read_image_mask_folders(root, regions, mask_values=BINARY_LABEL_VALUES, num_classes=2, masks_dir="labels")
