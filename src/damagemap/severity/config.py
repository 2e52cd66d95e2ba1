"""The optional ``severity`` section of a recipe: degree weights, bands and depth defaults.

Kept free of heavy imports: :mod:`damagemap.recipe` imports it.
"""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from damagemap.config import StrictModel


class GroundPlaneConfig(StrictModel):
    """Geometric depth fallback (see :mod:`damagemap.severity.depth`).

    ``horizon`` is the horizon row as a fraction of the image height from the top (0.5 = a
    level camera); ``camera_height_m`` the camera's height above flat ground; ``hfov_deg`` the
    horizontal field of view that gives the focal length in pixels.

    Rows at or above the horizon (sky, the upper parts of facades) and rows less than
    ``horizon_tolerance_deg`` below it get one depth, :attr:`depth_cap_m` = ``camera_height_m``
    / tan(``horizon_tolerance_deg``): the ground depth of the first row that far below the
    horizon (30.5 m with the defaults). Closer to the horizon a row's ground depth is set by
    the camera's pitch or the street's slope, not by the scene, and a facade above the horizon
    stands where its foot meets the ground below it; a fixed far depth there (formerly 100 m)
    let those rows outweigh the foreground ~1000× in the d²-weighted score. ``max_depth_m``, if
    set, lowers the cap further.
    """

    horizon: float = Field(0.5, ge=0, lt=1)
    camera_height_m: float = Field(1.6, gt=0)
    hfov_deg: float = Field(60.0, gt=0, lt=180)
    horizon_tolerance_deg: float = Field(3.0, gt=0, lt=90)
    max_depth_m: float | None = Field(None, gt=0)

    @property
    def depth_cap_m(self) -> float:
        """Depth of rows at, above and less than ``horizon_tolerance_deg`` below the horizon."""
        cap = self.camera_height_m / math.tan(math.radians(self.horizon_tolerance_deg))
        return cap if self.max_depth_m is None else min(cap, self.max_depth_m)


class SeverityConfig(StrictModel):
    """How segmentation classes become a severity score.

    ``degrees`` maps each *structure* class name to its degree of damage in [0, 1]; classes not
    listed (e.g. background, sky, people) are not structure and do not enter the score.
    ``bands`` maps band names to the lowest score in the band, in increasing order starting at
    0: a score falls into the last band whose threshold it reaches.
    """

    degrees: dict[str, float] = Field(
        default_factory=lambda: {"undamaged": 0.0, "damaged": 0.5, "debris": 1.0}, min_length=1
    )
    bands: dict[str, float] = Field(
        default_factory=lambda: {"none": 0.0, "light": 0.05, "moderate": 0.25, "severe": 0.5, "destroyed": 0.75},
        min_length=1,
    )
    ground: GroundPlaneConfig = Field(default_factory=GroundPlaneConfig)
    depth_size: int = Field(518, ge=14)
    """Input size (longer side) for a depth model; rounded down to its patch multiple."""

    @field_validator("degrees")
    @classmethod
    def _unit_interval(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: w for k, w in v.items() if not 0 <= w <= 1}
        if bad:
            raise ValueError(f"degree weights must be in [0, 1], got {bad}")
        return v

    @field_validator("bands")
    @classmethod
    def _increasing(cls, v: dict[str, float]) -> dict[str, float]:
        t = list(v.values())
        if t[0] != 0 or any(b <= a for a, b in zip(t, t[1:])) or t[-1] > 1:
            raise ValueError(f"band thresholds must start at 0, increase strictly and stay <= 1, got {v}")
        return v
