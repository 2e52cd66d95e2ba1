"""Per-band normalisation statistics of a training split (``input.standardize: dataset``).

:func:`compute_band_stats` streams over samples (one image in memory at a time) and merges
per-image moments with Chan et al.'s parallel update, in float64, ignoring NaN/inf and an
optional nodata value. :func:`fit_input_stats` returns the input configuration with the
statistics filled in: training calls it on the *training* samples only (never validation or
test) and the statistics then travel with the model in its recipe (``manifest.json`` →
``recipe.input.band_stats``), so evaluation, prediction and mapping standardise identically
(:func:`damagemap.data.views.standardize`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from damagemap.data.views import select_bands
from damagemap.errors import ConfigError
from damagemap.recipe import BandStats, InputConfig
from damagemap.types import Sample


class RunningBandStats:
    """Streaming per-band mean and variance (population) over ``[C, H, W]`` images."""

    def __init__(self) -> None:
        self.n: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def update(self, image: np.ndarray, nodata: float | None = None) -> None:
        """Add the valid pixels of one image (NaN, inf and ``nodata`` are skipped)."""
        x = image.reshape(image.shape[0], -1).astype(np.float64)
        valid = np.isfinite(x)
        if nodata is not None:
            valid &= x != nodata
        n = valid.sum(1).astype(np.float64)
        xs = np.where(valid, x, 0.0)
        mean = np.divide(xs.sum(1), n, out=np.zeros_like(n), where=n > 0)
        m2 = (np.where(valid, x - mean[:, None], 0.0) ** 2).sum(1)
        if self.n is None:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        if len(n) != len(self.n):
            raise ValueError(f"image has {len(n)} bands, earlier images had {len(self.n)}")
        total = self.n + n
        delta = mean - self.mean
        frac = np.divide(n, total, out=np.zeros_like(n), where=total > 0)
        self.mean = self.mean + delta * frac
        self.m2 = self.m2 + m2 + delta**2 * self.n * frac
        self.n = total

    def result(self) -> BandStats:
        """The statistics so far; bands without any valid pixel are an error."""
        if self.n is None or self.mean is None or self.m2 is None:  # all three are set together
            raise ConfigError("band statistics: no images to compute them from")
        empty = [int(b) for b in np.nonzero(self.n == 0)[0]]
        if empty:
            raise ConfigError(f"band statistics: band(s) {empty} have no valid (finite, non-nodata) pixel")
        std = np.sqrt(self.m2 / self.n)
        return BandStats(mean=self.mean.tolist(), std=np.maximum(std, 1e-6).tolist(), n_pixels=int(self.n.min()))


def compute_band_stats(images: Iterable[np.ndarray], nodata: float | None = None) -> BandStats:
    """Per-band mean/std over all valid pixels of ``images`` (each ``[C, H, W]``)."""
    acc = RunningBandStats()
    for image in images:
        acc.update(image, nodata)
    return acc.result()


def fit_input_stats(cfg: InputConfig, train_samples: Iterable[Sample], nodata: float | None = None) -> InputConfig:
    """``cfg`` with ``band_stats`` computed from ``train_samples`` (after band selection).

    Only for ``standardize: dataset`` without preset statistics; otherwise ``cfg`` is returned
    unchanged.
    """
    if cfg.standardize != "dataset" or cfg.band_stats is not None:
        return cfg
    stats = compute_band_stats((select_bands(s.image, cfg.bands, s.key) for s in train_samples), nodata)
    return cfg.model_copy(update={"band_stats": stats})
