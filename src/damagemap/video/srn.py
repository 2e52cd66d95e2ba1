"""Score Refinement Network (SRN): a per-location MLP on P2–P5 and its consistency loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEVELS = ("0", "1", "2", "3")
"""torchvision's FPN keys for P2–P5 (``"pool"`` is P6, not used)."""


class ScoreRefinementNetwork(nn.Module):
    """3-layer MLP applied at every location of every level (1×1 convolutions, shared weights)."""

    def __init__(self, in_channels: int = 256, hidden: int = 256, channels: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        """Embeddings of P2–P5 (keys ``"0"``–``"3"``); other levels are dropped."""
        return {k: self.mlp(features[k]) for k in LEVELS if k in features}


def consistency_distance(x: Tensor, y: Tensor) -> Tensor:
    """D(X, Y) = 1 − mean cosine similarity over locations, per batch item (``[B, C, H, W]`` → ``[B]``)."""
    return 1 - F.cosine_similarity(x, y, dim=1).flatten(1).mean(dim=1)


def multiscale_consistency_loss(
    anchor: dict[str, Tensor], positive: dict[str, Tensor], negative: dict[str, Tensor], margin: float = 1.0
) -> Tensor:
    """Σ_levels max(0, D(X, X+) − D(X, X−) + m), averaged over the batch."""
    total: Tensor | None = None
    for k in anchor:
        d_pos = consistency_distance(anchor[k], positive[k])
        d_neg = consistency_distance(anchor[k], negative[k])
        term = F.relu(d_pos - d_neg + margin)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("multiscale_consistency_loss needs at least one feature level")
    return total.mean()


def sample_triplets(
    times: Sequence[float],
    positive_s: float = 0.5,
    negative_s: float = 10.0,
    n: int = 1,
    generator: torch.Generator | None = None,
) -> list[tuple[int, int, int]]:
    """``n`` random (anchor, positive, negative) frame-index triplets chosen by timestamp.

    Positive: another frame with |t − t_a| ≤ ``positive_s``; negative: |t − t_a| ≥ ``negative_s``.
    Anchors without both kinds of partner are never drawn; an empty list means no triplet exists.
    """
    t = torch.as_tensor(list(times), dtype=torch.float64)
    gap = (t[:, None] - t[None, :]).abs()
    eye = torch.eye(len(t), dtype=torch.bool)
    pos = (gap <= positive_s) & ~eye
    neg = gap >= negative_s
    anchors = torch.nonzero(pos.any(1) & neg.any(1)).flatten()
    if len(anchors) == 0:
        return []
    out = []
    for _ in range(n):
        a = int(anchors[torch.randint(len(anchors), (1,), generator=generator)])
        p_idx, n_idx = torch.nonzero(pos[a]).flatten(), torch.nonzero(neg[a]).flatten()
        p = int(p_idx[torch.randint(len(p_idx), (1,), generator=generator)])
        q = int(n_idx[torch.randint(len(n_idx), (1,), generator=generator)])
        out.append((a, p, q))
    return out
