"""Training items: the one place where samples become what the fit loop consumes.

An :class:`Item` is one view of a sample (see :mod:`damagemap.data.views`) with its label raster
at encoder-input size (the training target), at native size (metrics are computed there), its
building mask, and its ``features``: the encoder-input image (``[image]``, for training through a
live encoder) or the frozen encoder's maps (from the feature cache). Pair recipes
(``input.pair``) carry two images (``[post, pre]``) or the maps of both (post levels first, then
the pre levels), which :class:`damagemap.heads.pair.PairHead` fuses.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from damagemap.data.augment import Dihedral
from damagemap.data.views import View, make_views, preprocess_key, view_image, view_images, view_mask
from damagemap.device import module_device
from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError
from damagemap.recipe import InputConfig
from damagemap.training.feature_cache import FeatureCache, default_cache_dir
from damagemap.tta import transform_key
from damagemap.types import Sample


class _DefaultCache:
    """Marker: use the default feature-cache folder (``None`` means in memory only)."""

    def __repr__(self) -> str:
        return "DEFAULT_CACHE"


DEFAULT_CACHE = _DefaultCache()
"""``cache_dir`` value meaning ``$DAMAGEMAP_CACHE`` or ``~/.cache/damagemap/features``."""
CacheDir = str | Path | None | _DefaultCache


@dataclass
class Item:
    """One view ready for training / evaluation.

    ``mask`` is at encoder-input size (training target); ``eval_mask`` at the view's native
    size (metrics are always computed at native resolution).
    """

    features: list[torch.Tensor]
    mask: torch.Tensor
    eval_mask: torch.Tensor
    buildings: torch.Tensor | None = None
    key: str = ""
    resized: bool = True
    building_ids: torch.Tensor | None = None
    """Building instance ids at native size (0 = none), for building-level scores."""
    sample_key: str = ""


def make_item(sample: Sample, view: View, cfg: InputConfig, features: list[torch.Tensor]) -> Item:
    """The item of ``view`` of ``sample`` carrying ``features``; a sample without mask is refused."""
    if sample.mask is None:
        raise ConfigError(f"sample {sample.key} has no mask; training and evaluation need labels")
    return Item(
        features=features,
        mask=view_mask(sample.mask, view, cfg),
        eval_mask=view_mask(sample.mask, view, cfg, native=True),
        buildings=None if sample.buildings is None else view_mask(sample.buildings, view, cfg),
        key=view.key,
        resized=cfg.mode == "resize",
        building_ids=None if sample.building_ids is None else _native(sample.building_ids, view),
        sample_key=view.sample_key,
    )


def _native(raster: np.ndarray, view: View) -> torch.Tensor:
    y0, x0, h, w = view.window
    return torch.from_numpy(np.ascontiguousarray(raster[y0 : y0 + h, x0 : x0 + w]))


def image_items(samples: Sequence[Sample], cfg: InputConfig) -> list[Item]:
    """Items whose ``features`` hold the encoder-input image(s) ``[C, S, S]`` (not yet encoded)."""
    return [
        make_item(samples[v.sample_index], v, cfg, view_images(samples[v.sample_index], v, cfg))
        for v in make_views(list(samples), cfg)
    ]


def cached_items(
    samples: Sequence[Sample],
    cfg: InputConfig,
    encoder: Encoder,
    cache_dir: CacheDir = DEFAULT_CACHE,
    progress: Progress | None = None,
    description: str = "encode",
    transform: Dihedral | None = None,
) -> list[Item]:
    """Items carrying the frozen encoder's maps, encoded once and kept in the feature cache.

    Pair recipes encode the pre-event view too, under its own cache key (``<view key>#pre``), so
    a post-only and a pair model of one encoder share the post features. ``transform`` (flip
    TTA) encodes the flipped view images instead, under their own keys; the items' masks stay as
    they are, so predictions on them must be flipped back (:mod:`damagemap.tta`).
    """
    views = make_views(list(samples), cfg)
    root = default_cache_dir() if isinstance(cache_dir, _DefaultCache) else cache_dir
    cache = FeatureCache(encoder, preprocess_key(cfg), root)
    images = (False, True) if cfg.pair else (False,)
    task = progress.add_task(description, total=len(views) * len(images), info="") if progress else None
    on_progress: Callable[[int], None] | None = None
    if progress is not None and task is not None:
        on_progress = lambda n: progress.advance(task, n)  # noqa: E731

    t = transform or Dihedral()
    suffix = transform_key(t)

    def encoded(pre: bool) -> list[list[torch.Tensor]]:
        return cache.features(
            [v.key + ("#pre" if pre else "") + suffix for v in views],
            lambda i: t(view_image(samples[views[i].sample_index], views[i], cfg, pre=pre)),
            batch_size=8,
            on_progress=on_progress,
        )

    per_image = [encoded(pre) for pre in images]
    return [
        make_item(samples[v.sample_index], v, cfg, [m for feats in per_image for m in feats[i]])
        for i, v in enumerate(views)
    ]


@torch.no_grad()
def encode_items(encoder: Encoder, items: Sequence[Item], batch_size: int = 8) -> list[Item]:
    """Copies of image items (:func:`image_items`) with ``features`` replaced by the encoder's maps.

    Each image of an item (post, and pre for pair recipes) is encoded; their maps are concatenated.
    """
    out: list[Item] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        maps = encode_images(encoder, [torch.stack(slot) for slot in zip(*(it.features for it in chunk))])
        for j, it in enumerate(chunk):
            encoded = copy.copy(it)
            encoded.features = [m[j] for m in maps]
            out.append(encoded)
    return out


def encode_images(encoder: Encoder, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The encoder's maps of each image batch ``[B, C, S, S]`` (post, then pre), concatenated level lists."""
    device = module_device(encoder)
    return [m for x in images for m in encoder(x.to(device, non_blocking=True))]
