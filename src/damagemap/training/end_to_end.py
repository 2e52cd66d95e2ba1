"""End-to-end training through the encoder, for encoders with trainable parameters (ATL, …).

Used instead of the feature cache when the encoder has any parameter with
``requires_grad=True`` (adapter modules attached by :mod:`damagemap.adapters`) or the recipe
asks for image-level augmentation (``train.color_jitter``), which changes encoder input. Every
step runs the images through the encoder; only parameters with ``requires_grad`` (adapters +
head) are optimised. Views, masks, dihedral augmentation, objectives, epoch selection on the
validation mIoU and the cosine schedule are those of the cached path (:mod:`.fit`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from rich.progress import Progress

from damagemap.adapters import adapter_record, parameter_counts, trainable_state
from damagemap.data.augment import random_dihedral
from damagemap.data.views import make_views, view_image, view_mask
from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError
from damagemap.heads import build_head
from damagemap.heads.base import Head
from damagemap.model import DamageModel
from damagemap.objectives.base import WeightedSum
from damagemap.recipe import Recipe, TrainConfig
from damagemap.training.fit import FitResult, Item, evaluate_items, forward_head
from damagemap.training.objective_factory import ObjectiveContext, build_objective
from damagemap.training.schedule import make_scheduler
from damagemap.types import Sample

View = dict[str, torch.Tensor]


def image_views(samples: Sequence[Sample], recipe: Recipe) -> list[Item]:
    """Items whose ``features`` hold the encoder-input image ``[C, S, S]`` (not yet encoded)."""
    cfg = recipe.input
    items = []
    for v in make_views(list(samples), cfg):
        s = samples[v.sample_index]
        if s.mask is None:
            raise ConfigError(f"sample {s.key} has no mask; training and evaluation need labels")
        items.append(Item(features=[view_image(s, v, cfg)], mask=view_mask(s.mask, v, cfg),
                          eval_mask=view_mask(s.mask, v, cfg, native=True),
                          buildings=None if s.buildings is None else view_mask(s.buildings, v, cfg),
                          key=v.key, resized=cfg.mode == "resize"))
    return items


def color_jitter(images: torch.Tensor, params: Sequence[float]) -> torch.Tensor:
    """torchvision ColorJitter(brightness, contrast, saturation, hue) on the first three bands of
    each image of ``[B, C, H, W]`` in [0, 1], drawn independently per image (global torch RNG)."""
    from torchvision.transforms import v2

    if images.shape[1] < 3:
        raise ConfigError("train.color_jitter needs at least 3 bands (it jitters the first three)")
    jitter = v2.ColorJitter(*params)
    rgb = torch.stack([jitter(img[:3]) for img in images])
    return torch.cat([rgb, images[:, 3:]], dim=1)


@torch.no_grad()
def encode_items(encoder: Encoder, items: Sequence[Item], batch_size: int = 8) -> list[Item]:
    """Copies of image items with ``features`` replaced by the encoder's maps."""
    out = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        maps = encoder(torch.stack([it.features[0] for it in chunk]))
        out += [copy.copy(it) for it in chunk]
        for j, it in enumerate(out[start:]):
            it.features = [m[j] for m in maps]
    return out


def fit_end_to_end(
    encoder: Encoder, head: Head, objective: WeightedSum, train: Sequence[Item], val: Sequence[Item],
    cfg: TrainConfig, num_classes: int, binary: bool, damage_classes: Sequence[int] = (1,),
    progress: Progress | None = None,
) -> tuple[FitResult, dict[str, torch.Tensor]]:
    """Train the trainable parameters of ``encoder`` and ``head`` on image items.

    Returns the :class:`FitResult` (best head weights) and the encoder's trainable tensors of
    the best epoch; both modules are left holding the best epoch's weights.
    """
    if not train:
        raise ValueError("no training views: the training split is empty")
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for m in (encoder, head) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(opt, cfg)
    size = tuple(train[0].mask.shape[-2:])
    n_batches = math.ceil(len(train) / cfg.batch_size)
    task = progress.add_task("train end-to-end", total=cfg.epochs * n_batches, info="") if progress else None
    best = FitResult(copy.deepcopy(head.state_dict()), 0, -math.inf)
    best_encoder = trainable_state(encoder)
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        total, count = 0.0, 0
        for b in range(n_batches):
            chunk = [train[i] for i in order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            if len(chunk) == 1 and n_batches > 1:
                continue  # BatchNorm cannot train on a single-image tail batch
            tfs = [random_dihedral(gen, cfg.augment) if cfg.augment else (lambda x: x) for _ in chunk]
            images = torch.stack([t(it.features[0]) for t, it in zip(tfs, chunk)])
            if cfg.color_jitter:
                images = color_jitter(images, cfg.color_jitter)
            batch = {"mask": torch.stack([t(it.mask) for t, it in zip(tfs, chunk)])}
            if all(it.buildings is not None for it in chunk):
                batch["buildings"] = torch.stack([t(it.buildings) for t, it in zip(tfs, chunk)])
            loss, _ = objective(forward_head(head, encoder(images), size), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            total += float(loss.detach()) * len(chunk)
            count += len(chunk)
            if progress is not None:
                progress.advance(task)
        if scheduler is not None:
            scheduler.step()
        record = {"epoch": epoch, "loss": total / max(count, 1)}
        if val and cfg.select_by != "last":
            encoder.invalidate_fingerprint()
            cm = evaluate_items(head, encode_items(encoder, val), num_classes, binary, cfg.threshold)
            scores = cm.scores(tuple(damage_classes))
            record.update({"val_miou": scores["miou"], "val_damage_iou": scores["damage_iou"]})
            score = scores["miou"] if cfg.select_by == "miou" else -record["loss"]
            score = -1.0 if math.isnan(score) else score
        else:
            score = float(epoch)
        best.history.append(record)
        if progress is not None:
            progress.update(task, info=" ".join(f"{k}={v:.3f}" for k, v in record.items() if k != "epoch"))
        if score > best.best_score:
            best.state_dict = copy.deepcopy(head.state_dict())
            best.best_epoch, best.best_score = epoch, score
            best_encoder = trainable_state(encoder)
    head.load_state_dict(best.state_dict)
    head.eval()
    own = dict(encoder.named_parameters())
    with torch.no_grad():
        for k, v in best_encoder.items():
            own[k].copy_(v)
    encoder.invalidate_fingerprint()
    return best, best_encoder


def train_end_to_end(
    recipe: Recipe, encoder: Encoder, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
    progress: Progress | None = None,
) -> tuple[DamageModel, FitResult]:
    """Build the head and train it together with the encoder's trainable parameters.

    The returned model's encoder is frozen again; its trained tensors are ``model.adapter``
    (saved as ``adapter.safetensors``) with ``model.adapter_config`` saying how to re-create
    them; ``metrics["parameters"]`` holds the trainable / total parameter counts and share.
    """
    train_items = image_views(train_samples, recipe)
    val_items = image_views(val_samples, recipe) if val_samples else []
    ctx = ObjectiveContext(recipe, [], encoder.channels)
    objective = build_objective(ctx)
    torch.manual_seed(recipe.train.seed)
    head = build_head(recipe.head.kind, in_channels=tuple(encoder.channels),
                      out_channels=recipe.num_outputs, **recipe.head.options)
    counts = parameter_counts(encoder, head)
    result, tensors = fit_end_to_end(encoder, head, objective, train_items, val_items, recipe.train,
                                     len(recipe.classes), recipe.binary, recipe.damage_classes, progress)
    config = adapter_record(encoder, tensors) if tensors else None
    encoder.freeze()
    model = DamageModel(recipe, encoder, head, dict(ctx.state), adapter=tensors or None, adapter_config=config)
    model.metrics = {"parameters": counts, "notes": ctx.notes}
    return model, result
