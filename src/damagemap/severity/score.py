"""The depth-weighted damage severity score of one photo.

Derivation (pinhole camera, focal length f in pixels). A pixel is a small square of side 1 px
on the image plane. Back-projected to a surface at depth d (distance along the optical axis)
it covers a patch of side d/f, i.e. a real-world area

    A(d) = (d / f)²   (for a surface facing the camera)

so a pixel twice as far away stands for four times the area. Each segmentation class c that is
*structure* has a degree of damage w_c ∈ [0, 1] (default undamaged 0, damaged 0.5, debris 1);
other classes (background, sky, people …) are not structure and carry no weight. The severity
of a photo is the damage-weighted share of the visible structure area:

    S = Σ_{p ∈ structure} w_{c(p)} · d_p²  /  Σ_{p ∈ structure} d_p²   ∈ [0, 1]

(f cancels, and so does any global scale of d — relative depth is enough). S = 0 when all
visible structure is undamaged, 1 when it is all debris, and it equals the area-weighted mean
degree of damage otherwise. Beside it the *pixel score* S_px uses d ≡ 1 (plain pixel counts),
which over-weights whatever is close to the camera.

Simplifications (documented, not hidden): surfaces are treated as facing the camera (a surface
seen at an angle θ covers 1/cos θ more area per pixel; that factor is unknown without normals);
depth is the depth map's value at the pixel centre. A photo with no structure pixels has no
severity: S is ``None`` and the band is ``"undefined"`` — never 0, which would claim "no damage".

Bands: ``bands`` maps names to lower thresholds (0 = none, 0.05 = light, 0.25 = moderate,
0.5 = severe, 0.75 = destroyed by default); S falls into the last band it reaches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

UNDEFINED = "undefined"


@dataclass
class SeverityScore:
    """The severity of one photo.

    Attributes:
        score: depth-weighted severity S in [0, 1], or ``None`` without structure pixels.
        band: band name of ``score`` (``"undefined"`` when ``score`` is ``None``).
        pixel_score: the unadjusted (pixel-count) score S_px, or ``None``.
        pixel_band: band of ``pixel_score``.
        area_shares: per structure class, its share of the depth-weighted structure area.
        pixel_shares: per class (all classes), its share of the photo's pixels.
        structure_fraction: fraction of the photo's pixels that are structure.
        depth_source: where the depth came from (model path or the ground-plane fallback).
    """

    score: float | None
    band: str
    pixel_score: float | None
    pixel_band: str
    area_shares: dict[str, float] = field(default_factory=dict)
    pixel_shares: dict[str, float] = field(default_factory=dict)
    structure_fraction: float = 0.0
    depth_source: str = ""


def band_of(score: float | None, bands: Mapping[str, float]) -> str:
    """The last band whose lower threshold ``score`` reaches; ``"undefined"`` for ``None``/NaN."""
    if score is None or np.isnan(score):
        return UNDEFINED
    name = next(iter(bands))
    for band, lower in bands.items():
        if score >= lower:
            name = band
    return name


def _weighted(
    labels: np.ndarray, weights: np.ndarray, degree: np.ndarray, structure: np.ndarray
) -> tuple[float | None, np.ndarray]:
    """Damage-weighted share and per-class area sums for per-pixel area ``weights``."""
    k = len(degree)
    area = np.bincount(labels.ravel(), weights=weights.ravel(), minlength=k)[:k]
    total = float(area[structure].sum())
    if total <= 0:
        return None, area
    return float(np.clip((area * degree)[structure].sum() / total, 0.0, 1.0)), area


def severity_score(
    labels: np.ndarray,
    depth: np.ndarray | None,
    classes: Sequence[str],
    degrees: Mapping[str, float],
    bands: Mapping[str, float],
    depth_source: str = "",
) -> SeverityScore:
    """Severity of one photo from its class map and depth map (see the module docstring).

    Args:
        labels: ``[H, W]`` class indices into ``classes`` (values ≥ len(classes) are ignored).
        depth: ``[H, W]`` depth (any unit, any global scale; finite, > 0), or ``None`` for the
            pixel score only (``score`` then equals ``pixel_score``).
        classes: class names of the segmentation model.
        degrees: structure class name → degree of damage in [0, 1].
        bands: band name → lower threshold, increasing from 0.
        depth_source: recorded with the score.

    Raises:
        ValueError: shapes differ, depth is not finite and positive, or ``degrees`` names a
            class not in ``classes``.
    """
    unknown = sorted(set(degrees) - set(classes))
    if unknown:
        raise ValueError(f"degrees name classes {unknown} that the model does not have ({list(classes)})")
    labels = np.asarray(labels)
    k = len(classes)
    valid = (labels >= 0) & (labels < k)
    lab = np.where(valid, labels, 0).astype(np.int64)
    degree = np.array([float(degrees.get(c, 0.0)) for c in classes])
    structure = np.array([c in degrees for c in classes])
    ones = valid.astype(np.float64)
    pixel_score, pixel_area = _weighted(lab, ones, degree, structure)
    if depth is None:
        score, area = pixel_score, pixel_area
    else:
        depth = np.asarray(depth, dtype=np.float64)
        if depth.shape != labels.shape:
            raise ValueError(f"depth map {depth.shape} and class map {labels.shape} differ in size")
        if not np.isfinite(depth[valid]).all() or (depth[valid] <= 0).any():
            raise ValueError("depth must be finite and > 0 at every labelled pixel")
        score, area = _weighted(lab, np.where(valid, depth, 0.0) ** 2, degree, structure)
    n = max(float(ones.sum()), 1.0)
    s_total = float(area[structure].sum())
    return SeverityScore(
        score=score,
        band=band_of(score, bands),
        pixel_score=pixel_score,
        pixel_band=band_of(pixel_score, bands),
        area_shares={
            c: float(area[i] / s_total) if s_total > 0 else 0.0 for i, c in enumerate(classes) if structure[i]
        },
        pixel_shares={c: float(pixel_area[i] / n) for i, c in enumerate(classes)},
        structure_fraction=float(pixel_area[structure].sum() / n),
        depth_source=depth_source if depth is not None else "none (pixel counts)",
    )
