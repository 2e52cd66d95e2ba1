"""Training loops: the detector on COCO instances, the SRN on video-frame triplets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress
from torch import Tensor

from damagemap.device import module_device
from damagemap.errors import InputError
from damagemap.video.coco import CocoDamageDataset
from damagemap.video.config import SRNConfig, TrainConfig, VideoInputConfig
from damagemap.video.frames import frame_rate, frame_times, read_frames, srn_stride
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
        device = module_device(model)
        losses = model([b[0].to(device) for b in batch], [{k: v.to(device) for k, v in b[1].items()} for b in batch])
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


@dataclass
class SRNRun:
    """What SRN training on one frame sequence did: its losses, or why it could not train."""

    losses: list[float]
    frames: int
    problem: str | None = None
    """Why no triplet could be drawn (then ``losses`` is empty and the SRN is unchanged)."""


def triplet_problem(times: Sequence[float], positive_s: float, negative_s: float) -> str | None:
    """Why frames at ``times`` admit no (anchor, positive, negative) triplet; None when they do."""
    t = sorted(times)
    if len(t) < 2:
        return f"only {len(t)} frame(s): no positive pair (two frames within srn.positive_s = {positive_s} s)"
    nearest = min(b - a for a, b in zip(t, t[1:]))
    if nearest > positive_s:
        return (
            f"no positive pair: no two frames are within srn.positive_s = {positive_s} s "
            f"(the nearest are {nearest:.2f} s apart)"
        )
    if t[-1] - t[0] < negative_s:
        return f"no negative: the frames span {t[-1] - t[0]:.1f} s, less than srn.negative_s = {negative_s} s"
    if not sample_triplets(times, positive_s, negative_s, 1):
        return f"no frame has both a positive (≤ {positive_s} s away) and a negative (≥ {negative_s} s away)"
    return None


def fit_srn(
    model: MSNet,
    frames: Mapping[int, Tensor] | Sequence[Tensor],
    triplets: Sequence[tuple[int, int, int]],
    cfg: SRNConfig,
    progress: Progress | None = None,
) -> list[float]:
    """One Adam step of the SRN per (anchor, positive, negative) triplet of frame indices; the detector is frozen."""
    model.eval()
    cache: dict[int, dict[str, Tensor]] = {}

    def fpn(i: int) -> dict[str, Tensor]:
        if i not in cache:
            with torch.no_grad():
                images, _ = model.transform([frames[i].to(module_device(model))])
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


def train_srn(
    model: MSNet,
    frames: Sequence[Tensor],
    times: Sequence[float],
    cfg: SRNConfig,
    seed: int = 42,
    progress: Progress | None = None,
) -> SRNRun:
    """Train only the SRN on ``cfg.iterations`` random triplets of ``frames`` (at ``times`` seconds).

    When the frames admit no triplet (no two frames within ``positive_s``, or none
    ``negative_s`` apart) nothing is trained and :attr:`SRNRun.problem` says why.
    """
    triplets = sample_triplets(
        times, cfg.positive_s, cfg.negative_s, cfg.iterations, torch.Generator().manual_seed(seed)
    )
    if not triplets:
        return SRNRun([], len(times), triplet_problem(times, cfg.positive_s, cfg.negative_s))
    return SRNRun(fit_srn(model, frames, triplets, cfg, progress), len(times))


def train_srn_on_video(
    model: MSNet,
    video: str | Path,
    cfg: SRNConfig,
    video_cfg: VideoInputConfig,
    seed: int = 42,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train the SRN on triplets of one video file or folder of frames; returns what was done.

    Frames are sampled with stride :func:`~damagemap.video.frames.srn_stride` (from the video's
    frame rate, or ``video.folder_fps`` for a folder) so they are at most ``positive_s / 2``
    apart when the source allows; ``video.every`` is not used here. Only the frames the
    triplets use are kept in memory. The record has ``fps``, ``stride``, ``spacing_s``,
    ``frames``, ``steps``, ``final_loss`` and ``problem`` (why nothing was trained, or None).
    """
    path = Path(video)
    fps = frame_rate(path, video_cfg.folder_fps)
    stride = srn_stride(fps, cfg.positive_s)
    index_times = frame_times(path, stride, video_cfg.folder_fps)
    times = [t for _, t in index_times]
    record: dict[str, Any] = {
        "video": str(video),
        "fps": fps,
        "stride": stride,
        "spacing_s": round(stride / fps, 4) if fps else None,
        "frames": len(times),
        "steps": 0,
        "final_loss": None,
        "problem": None,
    }
    triplets = sample_triplets(
        times, cfg.positive_s, cfg.negative_s, cfg.iterations, torch.Generator().manual_seed(seed)
    )
    if not triplets:
        problem = triplet_problem(times, cfg.positive_s, cfg.negative_s)
        if path.is_dir() and problem and "positive" in problem:
            problem += (
                f"; a folder of frames is read at video.folder_fps = {video_cfg.folder_fps} "
                "(set it to the frames' real rate, or give the video)"
            )
        record["problem"] = problem
        return record
    position = {index_times[k][0]: k for tr in triplets for k in tr}
    frames = {
        position[f.index]: torch.from_numpy(f.image) for f in read_frames(path, stride, video_cfg.folder_fps, position)
    }
    losses = fit_srn(model, frames, triplets, cfg, progress)
    record.update(steps=len(losses), final_loss=losses[-1])
    return record


def train_srn_on_videos(
    model: MSNet,
    videos: Sequence[str | Path],
    cfg: SRNConfig,
    video_cfg: VideoInputConfig,
    seed: int = 42,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """:func:`train_srn_on_video` on each video in turn (seed + k for the k-th); the model's ``srn`` metrics.

    ``{"trained", "steps", "final_loss", "videos": [per-video records], "problem"}``; ``problem``
    (None once any video trained the SRN) says why the SRN is still random.
    """
    runs = [train_srn_on_video(model, v, cfg, video_cfg, seed + k, progress) for k, v in enumerate(videos)]
    steps = sum(r["steps"] for r in runs)
    final = next((r["final_loss"] for r in reversed(runs) if r["steps"]), None)
    problem = None
    if not runs:
        problem = "no video given"
    elif not steps:
        problem = "; ".join(f"{Path(r['video']).name}: {r['problem']}" for r in runs)
    return {"trained": steps > 0, "steps": steps, "final_loss": final, "videos": runs, "problem": problem}
