"""Views: the encoder-sized pieces of samples (whole images resized, or native-resolution tiles).

A :class:`View` is what the encoder sees and what the feature cache stores. ``resize`` mode
gives one view per sample (the whole image resized to ``size``²); ``tile`` mode cuts each image
into ``size``² tiles at native resolution, edge tiles shifted inward so none leaves the image
(images smaller than ``size`` are zero-padded and their padding is ignored in the mask).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from damagemap.errors import ConfigError, InputError
from damagemap.recipe import InputConfig
from damagemap.types import IGNORE_INDEX, Sample


@dataclass(frozen=True)
class View:
    """One encoder input cut from ``samples[sample_index]``: window ``(y0, x0, h, w)``."""

    sample_index: int
    sample_key: str
    window: tuple[int, int, int, int]

    @property
    def key(self) -> str:
        """Cache key: the sample key and the view's window."""
        y0, x0, h, w = self.window
        return f"{self.sample_key}@{y0},{x0},{h},{w}"


def _starts(length: int, size: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, size))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def make_views(samples: list[Sample], cfg: InputConfig) -> list[View]:
    """All views of ``samples`` under the input configuration."""
    views: list[View] = []
    for i, s in enumerate(samples):
        h, w = s.image.shape[1:]
        if cfg.mode == "resize":
            views.append(View(i, s.key, (0, 0, h, w)))
            continue
        for y0 in _starts(h, cfg.size):
            for x0 in _starts(w, cfg.size):
                views.append(View(i, s.key, (y0, x0, min(cfg.size, h), min(cfg.size, w))))
    return views


def select_bands(image: np.ndarray, bands: list[int] | None, where: str) -> np.ndarray:
    """Pick 0-based ``bands`` from ``[C,H,W]``; a clear error when one is out of range."""
    if bands is None:
        return image
    bad = [b for b in bands if not 0 <= b < image.shape[0]]
    if bad:  # InputError is a ValueError; its message is "<where>: <problem>"
        raise InputError(
            where,
            f"band index {bad} out of range for an image with {image.shape[0]} bands "
            f"(valid 0-based indices: 0..{image.shape[0] - 1})",
        )
    return image[bands]


REFERENCE_MEAN = 0.45
REFERENCE_STD = 0.22
"""Per-band target statistics of ``standardize: image`` (close to natural-image statistics)."""


def standardize_image(image: np.ndarray) -> np.ndarray:
    """Map each band to mean ``REFERENCE_MEAN`` and std ``REFERENCE_STD``, clipped to [0, 1].

    Removes per-image brightness, contrast and colour casts (sensor, season, haze) while keeping
    the spatial structure; a constant band becomes the reference mean.
    """
    mean = image.mean(axis=(1, 2), keepdims=True)
    std = image.std(axis=(1, 2), keepdims=True)
    out = (image - mean) / np.maximum(std, 1e-6) * REFERENCE_STD + REFERENCE_MEAN
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def standardize_with_stats(image: np.ndarray, mean: list[float], std: list[float], where: str = "image") -> np.ndarray:
    """``standardize: dataset``: map stored per-band statistics to the reference ones.

    The given ``mean``/``std`` (of the training split) go to ``REFERENCE_MEAN``/``REFERENCE_STD``,
    clipped to [0, 1] — the same target as :func:`standardize_image`, so the encoder's own
    normalisation still applies afterwards.
    """
    if len(mean) != image.shape[0]:
        raise InputError(where, f"has {image.shape[0]} band(s) but the stored band statistics are for {len(mean)}")
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.maximum(np.asarray(std, np.float32), 1e-6)[:, None, None]
    return np.clip((image - m) / s * REFERENCE_STD + REFERENCE_MEAN, 0.0, 1.0).astype(np.float32)


def standardize(image: np.ndarray, cfg: InputConfig, where: str = "image") -> np.ndarray:
    """Apply ``cfg.standardize`` to a band-selected ``[C, H, W]`` image (train, predict and map)."""
    if cfg.standardize == "image":
        return standardize_image(image)
    if cfg.standardize == "dataset":
        if cfg.band_stats is None:
            raise ConfigError(
                "input.standardize is 'dataset' but no band statistics are stored; "
                "they are computed from the training split when the model is trained"
            )
        return standardize_with_stats(image, cfg.band_stats.mean, cfg.band_stats.std, where)
    return image


def view_image(sample: Sample, view: View, cfg: InputConfig, pre: bool = False) -> torch.Tensor:
    """The encoder input of a view: float32 ``[C, size, size]`` in [0, 1] (of the pre-event image with ``pre``)."""
    source = sample.image if not pre else pre_image(sample)
    image = standardize(select_bands(source, cfg.bands, sample.key), cfg, sample.key)
    y0, x0, h, w = view.window
    x = torch.from_numpy(np.ascontiguousarray(image[:, y0 : y0 + h, x0 : x0 + w]))
    if cfg.mode == "resize":
        return F.interpolate(x[None], size=(cfg.size, cfg.size), mode="bilinear", align_corners=False, antialias=True)[
            0
        ]
    return _pad_to(x, cfg.size, 0.0)


def pre_image(sample: Sample) -> np.ndarray:
    """The sample's pre-event image; a sample without one is an error naming it."""
    if sample.pre is None:
        where = sample.meta.get("image_path") or sample.key
        raise InputError(
            where,
            "has no pre-event image, but the recipe is a pair recipe (input.pair: true): give one "
            "(xBD *_pre_disaster.png, a pre/ folder beside images/, or --pre for a scene)",
        )
    return sample.pre


def view_images(sample: Sample, view: View, cfg: InputConfig) -> list[torch.Tensor]:
    """The encoder inputs of a view: ``[post]``, or ``[post, pre]`` for pair recipes."""
    post = view_image(sample, view, cfg)
    return [post, view_image(sample, view, cfg, pre=True)] if cfg.pair else [post]


def view_mask(mask: np.ndarray, view: View, cfg: InputConfig, native: bool = False) -> torch.Tensor:
    """A view's label raster: at encoder size (nearest) or, with ``native``, at native size."""
    y0, x0, h, w = view.window
    m = torch.from_numpy(np.ascontiguousarray(mask[y0 : y0 + h, x0 : x0 + w])).long()
    if cfg.mode == "tile":
        return m if native else _pad_to(m, cfg.size, IGNORE_INDEX)
    if native:
        return m
    return F.interpolate(m[None, None].float(), size=(cfg.size, cfg.size), mode="nearest")[0, 0].long()


def _pad_to(x: torch.Tensor, size: int, value: float) -> torch.Tensor:
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x
    return F.pad(x, (0, size - w, 0, size - h), value=value)


def content_hash(x: torch.Tensor) -> str:
    """Short hash of a tensor's bytes (cache invalidation when an image changes)."""
    return hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()[:16]


def preprocess_key(cfg: InputConfig) -> str:
    """Identifies the image → encoder-input transform (part of every cache key)."""
    bands = "all" if cfg.bands is None else ".".join(map(str, cfg.bands))
    key = f"{cfg.mode}{cfg.size}-bands{bands}-std{cfg.standardize}"
    if cfg.standardize == "dataset" and cfg.band_stats is not None:  # features depend on the stats
        stats = repr((cfg.band_stats.mean, cfg.band_stats.std)).encode()
        key += "-" + hashlib.sha256(stats).hexdigest()[:12]
    return key
