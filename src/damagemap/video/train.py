"""Training loops: the detector on COCO instances, the SRN on video-frame triplets."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from rich.progress import Progress
from torch import Tensor

from damagemap.errors import InputError
from damagemap.video.coco import CocoDamageDataset
from damagemap.video.config import SRNConfig, TrainConfig
from damagemap.video.model import MSNet
from damagemap.video.srn import multiscale_consistency_loss, sample_triplets


def hflip(image: Tensor, target: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """Mirror an image and its boxes, building boxes and masks left–right."""
    w = image.shape[-1]
    out = dict(target)
    for key in ("boxes", "building_boxes"):
        b = target[key].clone()
        b[:, [0, 2]] = w - target[key][:, [2, 0]]
        out[key] = b
    out["masks"] = target["masks"].flip(-1)
    return image.flip(-1), out


def train_detector(
    model: MSNet, data: CocoDamageDataset, cfg: TrainConfig, progress: Progress | None = None
) -> list[dict[str, float]]:
    """SGD over random mini-batches for ``cfg.iterations`` steps; returns the loss history.

    The SRN is not touched (it has its own loss and loop). Images without damage instances
    are skipped, so the few iterations a CPU affords are all spent on instances.
    """
    usable = [i for i in range(len(data)) if len(data[i][1]["boxes"])]
    if not usable:
        raise InputError(data.path, "no image has damage instances to train on")
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("srn.")]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    warm = max(cfg.warmup, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    cache = {i: data[i] for i in usable} if len(usable) <= 16 else None
    history = []
    model.train()
    task = progress.add_task("train detector", total=cfg.iterations, info="") if progress else None
    for _ in range(cfg.iterations):
        picks = torch.randint(len(usable), (cfg.batch_size,), generator=gen).tolist()
        batch = [cache[usable[k]] if cache else data[usable[k]] for k in picks]
        if cfg.hflip:
            flips = torch.rand(len(batch), generator=gen) < 0.5
            batch = [hflip(*b) if f else b for b, f in zip(batch, flips)]
        losses = model([b[0] for b in batch], [b[1] for b in batch])
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        history.append({k: float(v.detach()) for k, v in losses.items()} | {"loss": float(loss.detach())})
        if progress is not None and task is not None:
            progress.update(task, advance=1, info=f"loss {history[-1]['loss']:.3f}")
    model.eval()
    return history


def train_srn(
    model: MSNet,
    frames: Sequence[Tensor],
    times: Sequence[float],
    cfg: SRNConfig,
    seed: int = 42,
    progress: Progress | None = None,
) -> list[float]:
    """Train only the SRN on (anchor, positive, negative) frame triplets; the detector is frozen.

    Returns the loss history (empty when the frames admit no triplet: the video is shorter
    than ``negative_s`` or has no frames within ``positive_s`` of each other).
    """
    gen = torch.Generator().manual_seed(seed)
    triplets = sample_triplets(times, cfg.positive_s, cfg.negative_s, cfg.iterations, gen)
    if not triplets:
        return []
    model.eval()
    cache: dict[int, dict[str, Tensor]] = {}

    def fpn(i: int) -> dict[str, Tensor]:
        if i not in cache:
            with torch.no_grad():
                images, _ = model.transform([frames[i]])
                cache[i] = {k: v for k, v in model.backbone(images.tensors).items() if k != "pool"}
        return cache[i]

    model.srn.train()
    opt = torch.optim.Adam(model.srn.parameters(), lr=cfg.lr)
    history = []
    task = progress.add_task("train SRN", total=len(triplets), info="") if progress else None
    for a, p, n in triplets:
        loss = multiscale_consistency_loss(model.srn(fpn(a)), model.srn(fpn(p)), model.srn(fpn(n)), cfg.margin)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
        if progress is not None and task is not None:
            progress.update(task, advance=1, info=f"loss {history[-1]:.3f}")
    model.srn.eval()
    return history
