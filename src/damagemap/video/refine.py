"""Temporal score refinement: average uncertain confidences with their best match in the next frame."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign

from damagemap.video.srn import LEVELS


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


def refine_scores(
    scores: Sequence[Tensor], embeddings: Sequence[Tensor], c0: float, c1: float, labels: Sequence[Tensor] | None = None
) -> list[Tensor]:
    """Refined confidences for a sequence of frames.

    For every detection of frame ``t`` with confidence in [c0, c1], the most similar detection
    (cosine similarity of the embeddings, same label when ``labels`` is given) in the adjacent
    frame (``t + 1``; ``t − 1`` for the last frame) is found and the pair's mean confidence is
    assigned to both — but only to those of the two whose own confidence is in [c0, c1]: scores
    outside the band never change. A detection in several pairs gets the mean of its pair means.
    All means use the unrefined scores, so the result does not depend on processing order.
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
            if c0 <= float(scores[u][j]) <= c1:
                sums[u][j] += mean
                counts[u][j] += 1
    return [torch.where(c > 0, s_sum / c.clamp(min=1), s) for s, s_sum, c in zip(scores, sums, counts)]
