"""Glue: samples + recipe → trained :class:`DamageModel`; evaluation per domain.

One training path for every recipe: attach the adapters the recipe asks for, turn samples into
items (cached encoder maps for a frozen encoder; images for an encoder with trainable parts or
image-level augmentation), build the objective and the head, and run the one fit loop.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from damagemap.adapters import (
    adapter_record,
    adapter_specs,
    adapter_tensors,
    has_trainable_parameters,
    parameter_counts,
)
from damagemap.adapters.recipe import attach_recipe_adapters
from damagemap.data.band_stats import fit_input_stats
from damagemap.device import check_precision, module_device, resolve_device
from damagemap.encoders import build_encoder, encoder_options
from damagemap.encoders.base import Encoder
from damagemap.encoders.pixels import PixelsEncoder
from damagemap.errors import ConfigError
from damagemap.heads import HEADS, Head, build_head
from damagemap.model import DamageModel
from damagemap.objectives import ObjectiveContext, build_objective
from damagemap.recipe import Recipe
from damagemap.training.balance import resolve_class_weights
from damagemap.training.building_scores import BuildingRule, BuildingTally, building_scores, xview2_score
from damagemap.training.fit import FitResult, FitSpec, evaluate_items, fit
from damagemap.training.items import DEFAULT_CACHE, CacheDir, Item, cached_items, image_items
from damagemap.training.metrics import ConfusionMatrix
from damagemap.training.sources import EncodedOnDemand, FeatureSource, LiveEncoder
from damagemap.tta import transform_key, tta_transforms
from damagemap.types import Sample


def encoder_for(recipe: Recipe) -> Encoder:
    """Build the recipe's frozen encoder and check the input size fits it."""
    enc = build_encoder(
        recipe.encoder.name,
        checkpoint=recipe.encoder.checkpoint,
        pretrained=recipe.encoder.pretrained,
        **encoder_options(recipe.encoder.name, recipe.encoder.options, recipe.encoder.levels),
    )
    if recipe.input.size % enc.size_multiple:
        raise ConfigError(
            f"input.size {recipe.input.size} is not a multiple of {enc.size_multiple}, which encoder {enc.name} needs"
        )
    return enc


def head_options(recipe: Recipe, encoder: Encoder) -> dict[str, Any]:
    """The recipe's head options, plus ``encoder.checkpoint`` for a head that is the whole network.

    The ``pixels`` encoder has no weights: with it, the recipe's ``encoder.checkpoint`` is the
    pretrained backbone of the head (the option the head class names in ``backbone_checkpoint``,
    e.g. the U-Net's ``encoder_checkpoint``). A head without a pretrained backbone refuses it.
    Any other encoder loads its checkpoint itself and the head options are unchanged.

    Raises:
        ConfigError: the head cannot take the checkpoint, or it is given twice.
    """
    options = dict(recipe.head.options)
    ckpt, cls = recipe.encoder.checkpoint, HEADS.get(recipe.head.kind)
    if ckpt is None or cls is None or not isinstance(encoder, PixelsEncoder):
        return options  # an unknown head kind is reported by build_head
    option = getattr(cls, "backbone_checkpoint", None)
    if option is None:
        reason = getattr(cls, "no_backbone_checkpoint", "it has no pretrained backbone to initialise")
        raise ConfigError(
            f"encoder.checkpoint {ckpt}: the 'pixels' encoder has no weights and head {recipe.head.kind!r} "
            f"cannot use it: {reason}"
        )
    if option in options:
        raise ConfigError(
            f"head {recipe.head.kind!r}: backbone checkpoint given twice (encoder.checkpoint {ckpt} and "
            f"head.options.{option} {options[option]}); keep encoder.checkpoint"
        )
    options[option] = ckpt
    return options


def build_recipe_head(recipe: Recipe, channels: tuple[int, ...], options: dict[str, Any]) -> Head:
    """The recipe's head on encoder maps of ``channels``; pair recipes wrap it in a :class:`PairHead`."""
    if not recipe.input.pair:
        return build_head(recipe.head.kind, in_channels=channels, out_channels=recipe.num_outputs, **options)
    if recipe.encoder.name == "pixels":
        raise ConfigError(
            "input.pair needs a feature encoder: the whole-network baselines (encoder 'pixels') take post images only"
        )
    return build_head(
        "pair",
        in_channels=channels,
        out_channels=recipe.num_outputs,
        inner=recipe.head.kind,
        fusion=recipe.input.fusion,
        inner_options=options,
    )


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
    cache_dir: CacheDir = DEFAULT_CACHE,
    progress: Progress | None = None,
    device: torch.device | str | None = None,
    precision: str = "fp32",
) -> tuple[DamageModel, FitResult]:
    """Train the recipe's head (and adapters) on ``train_samples``; select the epoch on ``val_samples``.

    Without ``val_samples`` a seeded ``recipe.train.val_fraction`` hold-out is used. A given
    ``encoder`` is never modified (adapters go on a copy). The returned model's encoder is frozen;
    trained adapter tensors are ``model.adapter`` with ``model.adapter_config`` saying how to
    re-create them; ``metrics["parameters"]`` holds trainable / total parameter counts, and for a
    head that is the whole network (``unet``, ``yolo_fpn``) ``metrics["init"]`` says how it was
    initialised (see :func:`head_options`). Training runs on ``device`` (default: the encoder's;
    see :mod:`damagemap.device`) in ``precision``; the feature cache stays on the CPU.
    """
    torch.manual_seed(recipe.train.seed)
    np.random.seed(recipe.train.seed)
    encoder = attach_recipe_adapters(
        encoder or encoder_for(recipe), recipe, train_samples, copy_first=encoder is not None
    )
    options = head_options(recipe, encoder)  # refuse a misplaced checkpoint before any encoding
    run_on = resolve_device(device) if device is not None else module_device(encoder)
    check_precision(precision, run_on)
    encoder.to(run_on)
    if val_samples is None:
        train_samples, val_samples = split_validation(train_samples, recipe.train.val_fraction, recipe.train.seed)
    # standardize: dataset — per-band statistics from the training split only, kept in the recipe
    recipe = recipe.model_copy(update={"input": fit_input_stats(recipe.input, train_samples)})
    source: FeatureSource
    if has_trainable_parameters(encoder) or recipe.train.color_jitter:
        # trainable encoder parts or image-level augmentation: images go through the encoder every step
        train_items = image_items(train_samples, recipe.input)
        val_items = image_items(val_samples, recipe.input) if val_samples else []
        source = LiveEncoder(encoder, recipe.train.color_jitter)
        term_items: Sequence[Item] = EncodedOnDemand(encoder, train_items)  # e.g. PC prototypes
        description = "train end-to-end"
    else:
        train_items = cached_items(train_samples, recipe.input, encoder, cache_dir, progress, "encode train")
        val_items = (
            cached_items(val_samples, recipe.input, encoder, cache_dir, progress, "encode val") if val_samples else []
        )
        source, term_items, description = FeatureSource(), train_items, "train"
    class_weights = resolve_class_weights(recipe, [it.mask for it in train_items])
    ctx = ObjectiveContext(
        recipe,
        term_items,
        encoder.channels,
        has_buildings=all(it.buildings is not None for it in train_items),
        class_weights=class_weights,
    )
    if recipe.train.class_weights == "auto" and class_weights is not None:
        ctx.notes.append(f"class weights (auto, 1/sqrt of the class share): {class_weights}")
    objective = build_objective(ctx)
    torch.manual_seed(recipe.train.seed)
    head = build_recipe_head(recipe, tuple(encoder.channels), options)
    counts = parameter_counts(encoder, head)
    result = fit(
        head,
        objective,
        train_items,
        val_items,
        FitSpec.for_recipe(recipe, description, device=run_on, precision=precision),
        progress,
        source,
    )
    adapted = bool(adapter_specs(encoder))
    adapter = adapter_tensors(encoder) if adapted else None
    config = adapter_record(encoder) if adapted else None
    encoder.freeze()
    model = DamageModel(
        recipe, encoder, head, dict(ctx.state), adapter=adapter, adapter_config=config, precision=precision
    )
    model.metrics = {
        "best_epoch": result.best_epoch,
        "history": result.history,
        "native_view_size": _median_view_size(train_samples, recipe),
        "notes": ctx.notes,
        "parameters": counts,
    }
    init = getattr(head, "init_note", None)  # whole-network heads: "imagenet (…)" or "random init"
    if init is not None:
        model.metrics["init"] = init
    return model, result


def evaluate_model(
    model: DamageModel,
    samples: Sequence[Sample],
    cache_dir: CacheDir = DEFAULT_CACHE,
    progress: Progress | None = None,
    precision: str | None = None,
    building_rule: BuildingRule | None = None,
) -> dict[str, dict]:
    """Scores per domain plus ``"all"`` (pooled confusion matrix) for labelled ``samples``.

    Each entry also holds its pixel ``confusion`` matrix. Where samples carry building footprints
    (``building_ids``, or ``buildings`` split into connected parts) it adds building-level
    ``building_precision`` / ``building_recall`` / ``building_f1`` of "damaged", ``n_buildings``
    and ``building_confusion`` (per-building classes by ``building_rule``, default the recipe's
    ``scoring.building_rule``), and for K-class recipes the pixel ``xview2`` score (see
    :mod:`damagemap.training.building_scores`). Runs where the model is, in ``precision``
    (default: the model's).
    ``eval.tta: flip`` averages the probabilities over the four flips of every view (the flipped
    views are encoded and cached too).
    """
    r = model.recipe
    k, damage = len(r.classes), tuple(r.damage_classes)
    rule = building_rule or r.scoring.building_rule
    per_domain: dict[str, ConfusionMatrix] = {}
    per_domain_buildings: dict[str, ConfusionMatrix] = {}
    by_domain: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_domain[s.domain].append(with_building_ids(s))
    flips = tta_transforms(r.eval.tta)[1:]
    for domain, group in sorted(by_domain.items()):
        items = cached_items(group, r.input, model.encoder, cache_dir, progress, f"encode {domain}")
        flipped = [
            (
                t,
                cached_items(
                    group, r.input, model.encoder, cache_dir, progress, f"encode {domain} {transform_key(t)}", t
                ),
            )
            for t in flips
        ]
        tally = BuildingTally(k) if any(s.building_ids is not None for s in group) else None
        per_domain[domain] = evaluate_items(
            model.head,
            items,
            k,
            r.binary,
            r.train.threshold,
            precision=precision or model.precision,
            flipped=flipped,
            buildings=tally,
        )
        if tally is not None:
            per_domain_buildings[domain] = tally.confusion(rule, r.train.threshold)
    total = ConfusionMatrix.merge(per_domain.values()) if per_domain else ConfusionMatrix(k)
    total_buildings = ConfusionMatrix.merge(per_domain_buildings.values()) if per_domain_buildings else None

    def entry(cm: ConfusionMatrix, bcm: ConfusionMatrix | None, n: int) -> dict:
        out = cm.scores(damage) | {"n_samples": n, "confusion": cm.matrix.tolist(), "damage_classes": list(damage)}
        if bcm is not None:
            out |= building_scores(bcm, damage) | {"building_confusion": bcm.matrix.tolist()}
            if k > 2:
                out |= xview2_score(cm.matrix)
        return out

    out = {d: entry(cm, per_domain_buildings.get(d), len(by_domain[d])) for d, cm in per_domain.items()}
    out["all"] = entry(total, total_buildings, len(samples))
    return out


def with_building_ids(sample: Sample) -> Sample:
    """The sample with ``building_ids``: its own, else the connected parts of ``buildings`` (else unchanged)."""
    if sample.building_ids is not None or sample.buildings is None:
        return sample
    from scipy import ndimage

    ids, _ = ndimage.label(np.asarray(sample.buildings) > 0)
    return replace(sample, building_ids=ids.astype(np.int32))
