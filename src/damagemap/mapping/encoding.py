"""How blended probabilities become the three uint8 output rasters.

All three rasters are uint8 with **255 = nodata** (input nodata, areas outside the image
footprint, padding):

``damage_probability.tif``
    P(damage) quantised as ``round(p · 254)``, i.e. 0–254 ↔ 0.0–1.0 (GDAL band scale 1/254 is
    set, so ``gdalinfo``/QGIS can unscale). Binary models: the model's probability. K-class
    models: ``1 − P(class 0)`` (class 0 = no damage).
``damage_class.tif``
    Binary models: 1 where ``p ≥ threshold`` else 0. K-class models: argmax over the K
    classes (threshold unused). A colour table is attached.
``uncertainty.tif``
    Predictive entropy of the blended distribution, normalised by its maximum (ln 2 for binary,
    ln K for K classes) and quantised as ``round(H / H_max · 254)``: 0 = certain, 254 = maximally
    uncertain (band scale 1/254).
"""

from __future__ import annotations

import numpy as np

NODATA = 255
LEVELS = 254
PROBABILITY, CLASS, UNCERTAINTY = "damage_probability", "damage_class", "uncertainty"
LAYERS = (PROBABILITY, CLASS, UNCERTAINTY)


def quantise(x: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """[0, 1] floats → uint8 0–254 (``in_place``: ``x`` float32 may be overwritten)."""
    x = np.clip(x, 0.0, 1.0, out=x if in_place else None)
    x *= np.float32(LEVELS)
    return np.rint(x, out=x).astype(np.uint8)


def normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy of ``probs`` ``[K, …]`` divided by its maximum (0 certain … 1 uniform).

    ``K = 1``: binary damage probability (entropy of p and 1 − p, over ln 2); ``K > 1``: class
    probabilities (renormalised; over ln K).
    """
    probs = np.clip(probs.astype(np.float32, copy=False), 0.0, 1.0)
    if probs.shape[0] == 1:
        p = probs[0]
        h = _plogp(p)
        h += _plogp(1.0 - p)
        h /= np.float32(-np.log(2.0))
        return h
    total = probs.sum(axis=0, keepdims=True)
    probs = np.divide(probs, total, out=np.full_like(probs, 1.0 / probs.shape[0]), where=total > 0)
    return _plogp(probs).sum(axis=0) / np.float32(-np.log(probs.shape[0]))


def _plogp(p: np.ndarray) -> np.ndarray:
    """``p · ln p`` in float32 with ``0 · ln 0 = 0`` (p ≥ 0).

    Flooring the logarithm's argument at the smallest normal float gives exactly 0 at p = 0 and
    changes nothing else; ~3x faster than ``scipy.special.entr``, which computes in float64.
    """
    out = np.maximum(p, np.float32(np.finfo(np.float32).tiny))
    np.log(out, out=out)
    out *= p
    return out


def encode(probs: np.ndarray, valid: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """``probs`` ``[K, h, w]`` float32, ``valid`` ``[h, w]`` → the three uint8 ``[h, w]`` layers."""
    probs = np.clip(probs.astype(np.float32, copy=False), 0.0, 1.0)
    entropy = normalised_entropy(probs)
    if probs.shape[0] == 1:
        damage = probs[0]
        cls = (damage >= np.float32(threshold)).astype(np.uint8)
    else:
        total = probs.sum(axis=0, keepdims=True)
        probs = np.divide(probs, total, out=np.full_like(probs, 1.0 / probs.shape[0]), where=total > 0)
        damage = 1.0 - probs[0]
        cls = np.argmax(probs, axis=0).astype(np.uint8)
    # both are arrays of this call alone (clipped copies), so they may be overwritten
    out = {PROBABILITY: quantise(damage, in_place=True), CLASS: cls, UNCERTAINTY: quantise(entropy, in_place=True)}
    if not valid.all():
        invalid = ~valid
        for arr in out.values():
            arr[invalid] = NODATA
    return out


def damaged_mask(cls: np.ndarray, damaged: list[int]) -> np.ndarray:
    """Pixels whose class is in ``damaged`` (a fast range test for the usual 1..K-1)."""
    lo, hi = min(damaged), max(damaged)
    if len(damaged) == hi - lo + 1 and hi < NODATA:
        return (cls >= lo) & (cls <= hi)
    return np.isin(cls, damaged)


def damaged_classes(num_outputs: int) -> list[int]:
    """Class values that count as damaged: 1 for binary models, 1..K-1 for K-class models."""
    return [1] if num_outputs == 1 else list(range(1, num_outputs))
