"""The one fit loop: train a head (and any trainable encoder parts) and keep the best epoch.

Every kind of training runs here — a head on cached features, end to end through an encoder
with trainable adapters, and few-shot LoRA with the head frozen — differing only in the
:class:`~damagemap.training.sources.FeatureSource` and the :class:`FitSpec`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from rich.progress import Progress
from torch.nn import functional as F

from damagemap.adapters import has_trainable_parameters
from damagemap.data.augment import Dihedral, random_dihedral
from damagemap.device import autocast, module_device
from damagemap.heads.base import Head
from damagemap.objectives.base import ForwardOutput, WeightedSum
from damagemap.recipe import Recipe, TrainConfig
from damagemap.training.balance import balanced_weights, epoch_order
from damagemap.training.building_scores import BuildingTally
from damagemap.training.items import Item
from damagemap.training.metrics import ConfusionMatrix
from damagemap.training.schedule import make_scheduler
from damagemap.training.sources import FeatureSource, collate


@dataclass(frozen=True)
class FitSpec:
    """What the fit loop needs to know besides the data: optimisation settings and the task.

    ``train`` gives epochs, batch size, learning rate, weight decay, clipping, schedule,
    augmentation, seed and epoch selection; ``num_classes``, ``binary`` and ``damage_classes``
    define predictions and validation scores; ``description`` labels the progress task;
    ``device`` and ``precision`` say where and how (autocast) training runs — the head and the
    objective are moved there, batches follow (items themselves stay on the CPU).
    """

    train: TrainConfig
    num_classes: int
    binary: bool
    damage_classes: tuple[int, ...] = (1,)
    description: str = "train"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"

    @classmethod
    def for_recipe(
        cls,
        recipe: Recipe,
        description: str = "train",
        train: TrainConfig | None = None,
        device: torch.device | None = None,
        precision: str = "fp32",
    ) -> FitSpec:
        """The spec of ``recipe`` (optionally with other optimisation settings ``train``)."""
        return cls(
            train or recipe.train,
            len(recipe.classes),
            recipe.binary,
            tuple(recipe.damage_classes),
            description,
            device or torch.device("cpu"),
            precision,
        )


@dataclass
class FitResult:
    """Best head weights and the training history."""

    state_dict: dict[str, torch.Tensor]
    best_epoch: int
    best_score: float
    history: list[dict[str, float]] = field(default_factory=list)
    source_state: dict[str, torch.Tensor] = field(default_factory=dict)
    """Trainable encoder tensors of the best epoch (end-to-end training only)."""


def conv_layout(device: torch.device) -> torch.memory_format:
    """The memory format heads train and validate in.

    channels_last on the CPU, where oneDNN's convolutions and bilinear upsampling (and their
    gradients) ran ~1.7x faster in it; the default layout elsewhere (not measured there).
    """
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def to_layout(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``, image-shaped tensors in :func:`conv_layout`."""
    if x.dim() != 4:
        return x.to(device, non_blocking=True)
    return x.to(device, non_blocking=True, memory_format=conv_layout(device))


def forward_head(head: Head, features: list[torch.Tensor], size: tuple[int, int]) -> ForwardOutput:
    """Run the head, keeping its embedding for embedding-level objectives."""
    embedding = head.decode(features)
    return ForwardOutput(logits=head.classify(embedding, size), embedding=embedding, features=features)


def logits_to_labels(logits: torch.Tensor, binary: bool, threshold: float) -> torch.Tensor:
    """Class map from logits: sigmoid > threshold for binary heads, argmax otherwise."""
    if binary:
        return (torch.sigmoid(logits[:, 0]) > threshold).long()
    return logits.argmax(1)


def _scores(
    head: Head, chunk: Sequence[Item], device: torch.device, precision: str, binary: bool | None
) -> torch.Tensor:
    """The head's logits of a chunk of items or, with ``binary`` given, its probabilities."""
    feats, batch = collate(chunk)
    with autocast(device, precision):
        logits = head([to_layout(f, device) for f in feats], tuple(batch["mask"].shape[-2:])).float()
    if binary is None:
        return logits
    return torch.sigmoid(logits) if binary else torch.softmax(logits, 1)


def class_probabilities(logits: torch.Tensor, binary: bool) -> torch.Tensor:
    """``[B, K, H, W]`` class probabilities (binary heads: background = 1 − P(damage))."""
    if binary:
        p = torch.sigmoid(logits[:, :1])
        return torch.cat([1 - p, p], 1)
    return logits.softmax(1)


@torch.no_grad()
def evaluate_items(
    head: Head,
    items: Sequence[Item],
    num_classes: int,
    binary: bool,
    threshold: float = 0.5,
    batch_size: int = 16,
    precision: str = "fp32",
    flipped: Sequence[tuple[Dihedral, Sequence[Item]]] = (),
    buildings: BuildingTally | None = None,
) -> ConfusionMatrix:
    """Confusion matrix of the head's predictions at each item's native resolution (on the head's device).

    ``flipped`` (flip TTA, :mod:`damagemap.tta`): per flip, the items of the flipped images in
    the order of ``items``; the probabilities of each are flipped back and averaged with those
    of ``items`` before the labels are taken.

    With ``buildings``, items carrying ``building_ids`` also add their pixels to that tally.
    """
    head.eval()
    device = module_device(head)
    cm = ConfusionMatrix(num_classes)
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        if flipped:  # probabilities averaged over the flips
            scores = _scores(head, chunk, device, precision, binary)
            for t, other in flipped:
                scores = scores + t(_scores(head, other[start : start + batch_size], device, precision, binary))
            scores = scores / (1 + len(flipped))
        else:
            scores = _scores(head, chunk, device, precision, None)
        for j, it in enumerate(chunk):
            lg = scores[j : j + 1]
            h, w = it.eval_mask.shape
            if it.resized and tuple(lg.shape[-2:]) != (h, w):
                lg = F.interpolate(lg, size=(h, w), mode="bilinear", align_corners=False)
            else:  # tile views are native-resolution, zero-padded at the bottom/right
                lg = lg[..., :h, :w]
            labels = _labels(lg, binary, threshold, averaged=bool(flipped))[0].cpu().numpy()
            cm.update(labels, it.eval_mask.numpy())
            if buildings is not None and it.building_ids is not None:
                if flipped:
                    probs = torch.cat([1 - lg[:, :1], lg[:, :1]], 1) if binary else lg
                else:
                    probs = class_probabilities(lg, binary)
                buildings.add(
                    it.sample_key, it.building_ids.numpy(), it.eval_mask.numpy(), labels, probs[0].cpu().numpy()
                )
    return cm


def _labels(scores: torch.Tensor, binary: bool, threshold: float, averaged: bool) -> torch.Tensor:
    """Class labels of logits, or of flip-averaged probabilities when ``averaged``."""
    if not averaged:
        return logits_to_labels(scores, binary, threshold)
    return (scores[:, 0] > threshold).long() if binary else scores.argmax(1)


def fit(
    head: Head,
    objective: WeightedSum,
    train: Sequence[Item],
    val: Sequence[Item],
    spec: FitSpec,
    progress: Progress | None = None,
    source: FeatureSource | None = None,
) -> FitResult:
    """Train with AdamW + grad clipping; return the best epoch (its weights are left in place).

    Optimised: the head's trainable parameters plus ``source.parameters()``. A head with no
    trainable parameter (few-shot LoRA: decoder frozen) stays in eval mode. ``train.sampler:
    balanced`` draws each epoch's views by :func:`~damagemap.training.balance.balanced_weights`
    instead of a permutation. The best epoch is
    chosen by validation mIoU (``spec.train.select_by``); without validation items the last
    epoch is kept. Shuffling and augmentation use a generator seeded by ``spec.train.seed``.
    """
    if not train:
        raise ValueError("no training views: the training split is empty")
    source = source or FeatureSource()
    cfg = spec.train
    device = spec.device
    head.to(device).to(memory_format=conv_layout(device))
    objective.to(device)
    scaler = torch.amp.GradScaler(device.type) if spec.precision == "fp16" else None
    train_head = has_trainable_parameters(head)
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in head.parameters() if p.requires_grad] + source.parameters()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(opt, cfg)
    h, w = train[0].mask.shape[-2:]
    size = (h, w)
    n_batches = math.ceil(len(train) / cfg.batch_size)
    task = progress.add_task(spec.description, total=cfg.epochs * n_batches, info="") if progress else None
    best = FitResult(copy.deepcopy(head.state_dict()), 0, -math.inf, source_state=source.snapshot())
    source.prepare(train)
    draw = balanced_weights([it.mask for it in train], spec.num_classes) if cfg.sampler == "balanced" else None
    for epoch in range(1, cfg.epochs + 1):
        head.train(train_head)
        order = epoch_order(len(train), gen, draw)
        total, count = 0.0, 0
        for b in range(n_batches):
            chunk = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if train_head and len(chunk) == 1 and n_batches > 1:
                continue  # BatchNorm cannot train on a single-image tail batch
            tfs = [random_dihedral(gen, cfg.augment) for _ in chunk] if cfg.augment else None
            with autocast(device, spec.precision):
                feats, batch = source.step_inputs(chunk, tfs)
                feats = [to_layout(f, device) for f in feats]
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                out = forward_head(head, feats, size)
                out.logits = out.logits.float()
                loss, _ = objective(out, batch)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:  # fp16: scale the loss so small gradients survive
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            total += float(loss.detach()) * len(chunk)
            count += len(chunk)
            if progress is not None and task is not None:
                progress.advance(task)
        if scheduler is not None:
            scheduler.step()
        record = {"epoch": epoch, "loss": total / max(count, 1)}
        if val and cfg.select_by != "last":
            cm = evaluate_items(
                head, source.eval_items(val), spec.num_classes, spec.binary, cfg.threshold, precision=spec.precision
            )
            scores = cm.scores(spec.damage_classes)
            record.update({"val_miou": scores["miou"], "val_damage_iou": scores["damage_iou"]})
            score = scores["miou"] if cfg.select_by == "miou" else -record["loss"]
            score = -1.0 if math.isnan(score) else score
        else:
            score = float(epoch)
        best.history.append(record)
        if progress is not None and task is not None:
            progress.update(task, info=" ".join(f"{k}={v:.3f}" for k, v in record.items() if k != "epoch"))
        if score > best.best_score:
            best.state_dict = copy.deepcopy(head.state_dict())
            best.best_epoch, best.best_score = epoch, score
            best.source_state = source.snapshot()
    head.load_state_dict(best.state_dict)
    head.to(memory_format=torch.contiguous_format)
    head.eval()
    source.restore(best.source_state)
    return best
