"""The unit of data that flows from readers to training: :class:`Sample`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

IGNORE_INDEX = 255
"""Mask value for pixels that are excluded from losses and metrics."""


@dataclass
class GeoInfo:
    """Georeferencing of a sample: a CRS (WKT or EPSG string) and a rasterio-style affine."""

    crs: str
    transform: tuple[float, float, float, float, float, float]


@dataclass
class Sample:
    """One labelled (or unlabelled) image.

    Attributes:
        image: float32 array ``[C, H, W]`` scaled to [0, 1].
        mask: int64 array ``[H, W]`` of class indices; ``IGNORE_INDEX`` (255) is ignored.
            ``None`` for unlabelled images.
        domain: the region / city / event the sample belongs to (the unit of LODO).
        id: identifier unique within a dataset (used in cache keys and split files).
        geo: optional georeferencing.
        buildings: optional uint8 ``[H, W]`` building-footprint mask (1 = building).
        instances: optional list of instance annotations (used by instance-level methods).
        meta: free-form extra information (source paths, …).
        pre: optional pre-event image, float32 ``[C, H, W]`` in [0, 1] on the same pixel grid as
            ``image`` (pair recipes, ``input.pair``); pixels it does not cover are 0.
        building_ids: optional int32 ``[H, W]`` building instance ids (0 = no building), for
            building-level scores; derived from ``buildings`` (connected parts) when absent.
    """

    image: np.ndarray
    mask: np.ndarray | None
    domain: str
    id: str
    geo: GeoInfo | None = None
    buildings: np.ndarray | None = None
    instances: list[dict[str, Any]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    pre: np.ndarray | None = None
    building_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3:
            raise ValueError(f"sample {self.id}: image must be [C,H,W], got shape {self.image.shape}")
        if self.pre is not None and self.pre.shape != self.image.shape:
            raise ValueError(f"sample {self.id}: pre image shape {self.pre.shape} != image shape {self.image.shape}")
        if self.mask is not None and self.mask.shape != self.image.shape[1:]:
            raise ValueError(f"sample {self.id}: mask shape {self.mask.shape} != image size {self.image.shape[1:]}")

    @property
    def key(self) -> str:
        """Dataset-wide unique key: ``domain/id``."""
        return f"{self.domain}/{self.id}"

    def damaged_fraction(self, damage_classes: tuple[int, ...] = (1,)) -> float:
        """Fraction of labelled pixels whose class is in ``damage_classes`` (for stratified splits)."""
        if self.mask is None:
            return 0.0
        valid = self.mask != IGNORE_INDEX
        n = int(valid.sum())
        if n == 0:
            return 0.0
        return float(np.isin(self.mask[valid], damage_classes).sum() / n)
