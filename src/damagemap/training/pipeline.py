"""Glue: samples + recipe → cached items → trained :class:`DamageModel`; evaluation per domain."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from damagemap.data.band_stats import fit_input_stats
from damagemap.encoders.band_adapt import attach_band_adapter
from damagemap.adapters import has_trainable_parameters, parameter_counts
from damagemap.adapters.recipe import attach_recipe_adapters
from damagemap.data.views import make_views, preprocess_key, view_image, view_mask
from damagemap.encoders import build_encoder
from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError
from damagemap.heads import build_head
from damagemap.model import DamageModel
from damagemap.recipe import Recipe
from damagemap.training.feature_cache import FeatureCache, default_cache_dir
from damagemap.training.fit import FitResult, Item, evaluate_items, fit
from damagemap.training.metrics import ConfusionMatrix
from damagemap.training.objective_factory import ObjectiveContext, build_objective
from damagemap.types import Sample

_UNSET = object()


def encoder_for(recipe: Recipe) -> Encoder:
    """Build the recipe's frozen encoder and check the input size fits it."""
    enc = build_encoder(recipe.encoder.name, checkpoint=recipe.encoder.checkpoint,
                        pretrained=recipe.encoder.pretrained, **recipe.encoder.options)
    if recipe.input.size % enc.size_multiple:
        raise ConfigError(
            f"input.size {recipe.input.size} is not a multiple of {enc.size_multiple}, "
            f"which encoder {enc.name} needs"
        )
    return enc


def build_items(
    samples: Sequence[Sample],
    recipe: Recipe,
    encoder: Encoder,
    cache_dir: str | Path | None | object = _UNSET,
    progress: Progress | None = None,
    description: str = "encode",
) -> list[Item]:
    """Encode (or fetch from the cache) every view of ``samples`` into training items."""
    cfg = recipe.input
    views = make_views(list(samples), cfg)
    root = default_cache_dir() if cache_dir is _UNSET else cache_dir
    cache = FeatureCache(encoder, preprocess_key(cfg), root)  # type: ignore[arg-type]
    task = progress.add_task(description, total=len(views), info="") if progress else None
    feats = cache.features(
        [v.key for v in views],
        lambda i: view_image(samples[views[i].sample_index], views[i], cfg),
        batch_size=8,
        on_progress=(lambda n: progress.advance(task, n)) if progress else None,
    )
    items = []
    for v, f in zip(views, feats):
        s = samples[v.sample_index]
        if s.mask is None:
            raise ConfigError(f"sample {s.key} has no mask; training and evaluation need labels")
        items.append(Item(
            features=f,
            mask=view_mask(s.mask, v, cfg),
            eval_mask=view_mask(s.mask, v, cfg, native=True),
            buildings=None if s.buildings is None else view_mask(s.buildings, v, cfg),
            key=v.key,
            resized=cfg.mode == "resize",
        ))
    return items


def _median_view_size(samples: Sequence[Sample], recipe: Recipe) -> int:
    """Native pixel extent of a typical training view (the mapper's default tile size)."""
    if recipe.input.mode == "tile" or not samples:
        return recipe.input.size
    return int(np.median([max(s.image.shape[1:]) for s in samples]))


def split_validation(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Seeded random hold-out of ``fraction`` of the samples (at least one if fraction > 0)."""
    if fraction <= 0 or len(samples) < 2:
        return list(samples), []
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(fraction * len(samples)))
    val = {i for i in order[:n_val]}
    return [s for i, s in enumerate(samples) if i not in val], [s for i, s in enumerate(samples) if i in val]


def train_model(
    recipe: Recipe,
    train_samples: Sequence[Sample],
    val_samples: Sequence[Sample] | None = None,
    *,
    encoder: Encoder | None = None,
    cache_dir: str | Path | None | object = _UNSET,
    progress: Progress | None = None,
) -> tuple[DamageModel, FitResult]:
    """Train the recipe's head on ``train_samples``; select the epoch on ``val_samples``.

    Without ``val_samples`` a seeded ``recipe.train.val_fraction`` hold-out is used.
    """
    torch.manual_seed(recipe.train.seed)
    np.random.seed(recipe.train.seed)
    given = encoder is not None
    # more bands than an RGB encoder takes: trainable extra-band conv in its first layer (saved as adapter)
    encoder = attach_band_adapter(encoder or encoder_for(recipe), recipe.input, train_samples, copy_first=given)
    encoder = attach_recipe_adapters(encoder, recipe, copy_first=given and not has_trainable_parameters(encoder))
    if val_samples is None:
        train_samples, val_samples = split_validation(train_samples, recipe.train.val_fraction, recipe.train.seed)
    # standardize: dataset — per-band statistics from the training split only, kept in the recipe
    recipe = recipe.model_copy(update={"input": fit_input_stats(recipe.input, train_samples)})
    if has_trainable_parameters(encoder) or recipe.train.color_jitter:
        # trainable encoder modules (ATL, …) or image-level augmentation: no feature cache
        from damagemap.training.end_to_end import train_end_to_end

        model, result = train_end_to_end(recipe, encoder, train_samples, val_samples or [], progress)
        model.metrics.update({"best_epoch": result.best_epoch, "history": result.history,
                              "native_view_size": _median_view_size(train_samples, recipe)})
        return model, result
    train_items = build_items(train_samples, recipe, encoder, cache_dir, progress, "encode train")
    val_items = build_items(val_samples, recipe, encoder, cache_dir, progress, "encode val") if val_samples else []
    ctx = ObjectiveContext(recipe, train_items, encoder.channels)
    objective = build_objective(ctx)
    torch.manual_seed(recipe.train.seed)
    head = build_head(recipe.head.kind, in_channels=tuple(encoder.channels),
                      out_channels=recipe.num_outputs, **recipe.head.options)
    result = fit(head, objective, train_items, val_items, recipe.train, len(recipe.classes),
                 recipe.binary, recipe.damage_classes, progress)
    counts = parameter_counts(encoder, head)
    model = DamageModel(recipe, encoder, head, dict(ctx.state))
    model.metrics = {"best_epoch": result.best_epoch, "history": result.history,
                     "native_view_size": _median_view_size(train_samples, recipe), "notes": ctx.notes,
                     "parameters": counts}
    return model, result


def evaluate_model(
    model: DamageModel,
    samples: Sequence[Sample],
    cache_dir: str | Path | None | object = _UNSET,
    progress: Progress | None = None,
) -> dict[str, dict]:
    """Scores per domain plus ``"all"`` (pooled confusion matrix) for labelled ``samples``."""
    r = model.recipe
    per_domain: dict[str, ConfusionMatrix] = defaultdict(lambda: ConfusionMatrix(len(r.classes)))
    by_domain: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_domain[s.domain].append(s)
    for domain, group in sorted(by_domain.items()):
        items = build_items(group, r, model.encoder, cache_dir, progress, f"encode {domain}")
        per_domain[domain] = evaluate_items(model.head, items, len(r.classes), r.binary, r.train.threshold)
    total = ConfusionMatrix.merge(per_domain.values()) if per_domain else ConfusionMatrix(len(r.classes))
    out = {d: cm.scores(tuple(r.damage_classes)) | {"n_samples": len(by_domain[d])} for d, cm in per_domain.items()}
    out["all"] = total.scores(tuple(r.damage_classes)) | {"n_samples": len(samples)}
    return out
