"""Temporal score refinement: average uncertain confidences with their best match in the next frame."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign

from damagemap.video.config import RefineConfig
from damagemap.video.srn import LEVELS

if TYPE_CHECKING:
    from damagemap.video.model import MSNet


def roi_embeddings(
    srn_features: dict[str, Tensor], boxes: Tensor, image_size: tuple[int, int], output_size: int = 7
) -> Tensor:
    """One flattened RoIAlign'ed SRN embedding per box (boxes in network-input coordinates).

    torchvision's :class:`MultiScaleRoIAlign` picks the FPN level of each box by its size, as
    Mask R-CNN's box head does, and calls :func:`torchvision.ops.roi_align` on it.
    """
    if len(boxes) == 0:
        return boxes.new_zeros((0, 1))
    pool = MultiScaleRoIAlign([k for k in LEVELS if k in srn_features], output_size, sampling_ratio=2)
    return pool(srn_features, [boxes], [image_size]).flatten(1)


def detect_and_embed(model: MSNet, image: Tensor, roi_size: int = 7) -> tuple[dict[str, Tensor], Tensor]:
    """Eval-mode detections of one frame and the SRN embedding of each detection (``[N, D]``).

    The SRN runs on the frame's FPN levels P2–P5 and each detected box is pooled from them
    with :func:`roi_embeddings`; prediction and evaluation both use this.
    """
    detections, features, input_boxes = model.detect([image])
    with torch.no_grad():
        srn = model.srn({k: v for k, v in features.items() if k != "pool"})
        size = (features["0"].shape[-2] * 4, features["0"].shape[-1] * 4)  # P2 is stride 4
        embeddings = roi_embeddings(srn, input_boxes[0], size, roi_size).cpu()
    return detections[0], embeddings


def refine_detections(
    detections: Sequence[dict[str, Tensor]], embeddings: Sequence[Tensor], cfg: RefineConfig
) -> list[Tensor]:
    """The recipe's refined scores for consecutive frames' detections (the raw scores when disabled)."""
    raw = [d["scores"] for d in detections]
    if not cfg.enabled:
        return list(raw)
    labels = [d["labels"] for d in detections] if cfg.same_label else None
    return refine_scores(raw, embeddings, cfg.c0, cfg.c1, labels)


def refine_scores(
    scores: Sequence[Tensor], embeddings: Sequence[Tensor], c0: float, c1: float, labels: Sequence[Tensor] | None = None
) -> list[Tensor]:
    """Refined confidences for a sequence of frames (docs/methods.md §4).

    For every detection of frame ``t`` with confidence in [c0, c1], the most similar detection
    (cosine similarity of the embeddings) in the adjacent frame (``t + 1``; ``t − 1`` for the
    last frame) is found and both confidences are replaced by the pair's mean, as the paper
    describes: the partner is updated whatever its own confidence. With ``labels`` the match
    is restricted to detections of the same label (``refine.same_label``, a deviation from the
    paper, which matches any prediction). Choices the paper leaves open: a detection in several
    pairs (it matched, and was matched by, others) gets the mean of its pair means, and all
    means use the unrefined scores, so the result does not depend on processing order.
    Detections in no pair keep their score.
    """
    sums = [torch.zeros_like(s) for s in scores]
    counts = [torch.zeros_like(s) for s in scores]
    n = len(scores)
    for t in range(n):
        u = t + 1 if t + 1 < n else t - 1
        if u < 0 or len(scores[t]) == 0 or len(scores[u]) == 0:
            continue
        sim = F.normalize(embeddings[t], dim=1) @ F.normalize(embeddings[u], dim=1).T
        if labels is not None:
            sim = sim.masked_fill(labels[t][:, None] != labels[u][None, :], float("-inf"))
        for i in torch.nonzero((scores[t] >= c0) & (scores[t] <= c1)).flatten().tolist():
            if not torch.isfinite(sim[i]).any():
                continue
            j = int(sim[i].argmax())
            mean = (scores[t][i] + scores[u][j]) / 2
            sums[t][i] += mean
            counts[t][i] += 1
            sums[u][j] += mean
            counts[u][j] += 1
    return [torch.where(c > 0, s_sum / c.clamp(min=1), s) for s, s_sum, c in zip(scores, sums, counts)]
