"""The fit loop: train a head on cached features, keep the best epoch by validation mIoU."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from rich.progress import Progress
from torch.nn import functional as F

from damagemap.data.augment import random_dihedral
from damagemap.heads.base import Head
from damagemap.objectives.base import ForwardOutput, WeightedSum
from damagemap.recipe import TrainConfig
from damagemap.training.metrics import ConfusionMatrix
from damagemap.training.schedule import make_scheduler


@dataclass
class Item:
    """One cached view ready for training / evaluation.

    ``mask`` is at encoder-input size (training target); ``eval_mask`` at the view's native
    size (metrics are always computed at native resolution).
    """

    features: list[torch.Tensor]
    mask: torch.Tensor
    eval_mask: torch.Tensor
    buildings: torch.Tensor | None = None
    key: str = ""
    resized: bool = True


@dataclass
class FitResult:
    """Best head weights and the training history."""

    state_dict: dict[str, torch.Tensor]
    best_epoch: int
    best_score: float
    history: list[dict[str, float]] = field(default_factory=list)
    source_state: dict[str, torch.Tensor] = field(default_factory=dict)
    """Trainable encoder tensors of the best epoch (end-to-end training only)."""


def _collate(items: Sequence[Item], transforms: Sequence | None = None) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    n_levels = len(items[0].features)
    feats, masks, blds = [[] for _ in range(n_levels)], [], []
    has_buildings = all(it.buildings is not None for it in items)
    for j, it in enumerate(items):
        t = transforms[j] if transforms else (lambda x: x)
        for lvl in range(n_levels):
            feats[lvl].append(t(it.features[lvl]))
        masks.append(t(it.mask))
        if has_buildings:
            blds.append(t(it.buildings))
    batch = {"mask": torch.stack(masks)}
    if has_buildings:
        batch["buildings"] = torch.stack(blds)
    return [torch.stack(f).float() for f in feats], batch


def forward_head(head: Head, features: list[torch.Tensor], size: tuple[int, int]) -> ForwardOutput:
    """Run the head, keeping its embedding for embedding-level objectives."""
    embedding = head.decode(features)
    return ForwardOutput(logits=head.classify(embedding, size), embedding=embedding, features=features)


class FeatureSource:
    """Where a training step's encoder maps come from: the feature cache (this class, the
    default) or a live encoder with trainable parts (``damagemap.training.end_to_end``)."""

    def parameters(self) -> list[torch.nn.Parameter]:
        """Encoder-side parameters to optimise alongside the head."""
        return []

    def step_inputs(self, chunk: Sequence[Item], transforms: Sequence | None) -> tuple[list[torch.Tensor], dict]:
        """Encoder maps and targets of one training batch."""
        return _collate(chunk, transforms)

    def eval_items(self, items: Sequence[Item]) -> Sequence[Item]:
        """Items carrying encoder maps for validation."""
        return items

    def snapshot(self) -> dict[str, torch.Tensor]:
        """Trainable encoder tensors to keep with the best epoch."""
        return {}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        """Put a :meth:`snapshot` back."""


def logits_to_labels(logits: torch.Tensor, binary: bool, threshold: float) -> torch.Tensor:
    """Class map from logits: sigmoid > threshold for binary heads, argmax otherwise."""
    if binary:
        return (torch.sigmoid(logits[:, 0]) > threshold).long()
    return logits.argmax(1)


@torch.no_grad()
def evaluate_items(
    head: Head,
    items: Sequence[Item],
    num_classes: int,
    binary: bool,
    threshold: float = 0.5,
    batch_size: int = 16,
) -> ConfusionMatrix:
    """Confusion matrix of the head's predictions at each item's native resolution."""
    head.eval()
    cm = ConfusionMatrix(num_classes)
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        feats, batch = _collate(chunk)
        logits = head(feats, tuple(batch["mask"].shape[-2:]))
        for j, it in enumerate(chunk):
            lg = logits[j : j + 1]
            h, w = it.eval_mask.shape
            if it.resized and tuple(lg.shape[-2:]) != (h, w):
                lg = F.interpolate(lg, size=(h, w), mode="bilinear", align_corners=False)
            else:  # tile views are native-resolution, zero-padded at the bottom/right
                lg = lg[..., :h, :w]
            cm.update(logits_to_labels(lg, binary, threshold)[0].numpy(), it.eval_mask.numpy())
    return cm


def fit(
    head: Head,
    objective: WeightedSum,
    train: Sequence[Item],
    val: Sequence[Item],
    cfg: TrainConfig,
    num_classes: int,
    binary: bool,
    damage_classes: Sequence[int] = (1,),
    progress: Progress | None = None,
    description: str = "train",
    source: FeatureSource | None = None,
) -> FitResult:
    """Train ``head`` with AdamW + grad clipping on cached features; return the best epoch.

    The best epoch is chosen by validation mIoU (``cfg.select_by``); without validation items
    the last epoch is kept. Shuffling and augmentation use a generator seeded by ``cfg.seed``.
    """
    if not train:
        raise ValueError("no training views: the training split is empty")
    source = source or FeatureSource()
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in head.parameters() if p.requires_grad] + source.parameters()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(opt, cfg)
    size = tuple(train[0].mask.shape[-2:])
    n_batches = math.ceil(len(train) / cfg.batch_size)
    task = progress.add_task(description, total=cfg.epochs * n_batches, info="") if progress else None
    best = FitResult(copy.deepcopy(head.state_dict()), 0, -math.inf, source_state=source.snapshot())
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        total, count = 0.0, 0
        for b in range(n_batches):
            chunk = [train[i] for i in order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            if len(chunk) == 1 and n_batches > 1:
                continue  # BatchNorm cannot train on a single-image tail batch
            tfs = [random_dihedral(gen, cfg.augment) for _ in chunk] if cfg.augment else None
            feats, batch = source.step_inputs(chunk, tfs)
            out = forward_head(head, feats, size)
            loss, _ = objective(out, batch)
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
            cm = evaluate_items(head, source.eval_items(val), num_classes, binary, cfg.threshold)
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
            best.source_state = source.snapshot()
    head.load_state_dict(best.state_dict)
    head.eval()
    source.restore(best.source_state)
    return best
