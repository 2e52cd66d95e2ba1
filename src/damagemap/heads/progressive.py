"""Smart Transfer's progressive decoder (docs/methods.md §1).

``n_stages`` × [3×3 conv (no bias) → BatchNorm → ReLU → nearest 2× upsample], channels
C→256→…→256, then a 1×1 conv to ``out_channels`` logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from damagemap.heads.base import Head


def _stage(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Upsample(scale_factor=2, mode="nearest"),
    )


class ProgressiveHead(Head):
    """Progressive upsampling decoder on a single-scale feature map.

    Only the *last* (coarsest) feature map ``features[-1]`` is decoded — for a ViT encoder this
    is the patch-token map of the last layer. With 4 stages a stride-16 map comes back at input
    size; for other strides (14, 32, …) :meth:`classify` resizes the logits bilinearly.

    Args:
        in_channels: channels of each encoder map; only ``in_channels[-1]`` is used. An int is
            accepted for a single map.
        out_channels: 1 for a binary (sigmoid) head, else the number of classes.
        mid_channels: channels of every stage (256 in the paper).
        n_stages: number of conv-BN-ReLU-upsample stages (4 in the paper).
    """

    kind = "progressive"

    def __init__(
        self,
        in_channels: int | Sequence[int],
        out_channels: int,
        mid_channels: int = 256,
        n_stages: int = 4,
    ) -> None:
        super().__init__()
        channels = [in_channels] if isinstance(in_channels, int) else list(in_channels)
        if not channels or n_stages < 1 or mid_channels < 1 or out_channels < 1:
            raise ValueError(
                "ProgressiveHead needs in_channels, n_stages >= 1, mid_channels >= 1 and "
                f"out_channels >= 1; got {channels}, {n_stages}, {mid_channels}, {out_channels}"
            )
        self.in_channels = tuple(int(c) for c in channels)
        self.out_channels = int(out_channels)
        self.embed_channels = int(mid_channels)
        self.n_stages = int(n_stages)
        widths = [self.in_channels[-1]] + [self.embed_channels] * self.n_stages
        self.stages = nn.Sequential(*(_stage(a, b) for a, b in zip(widths[:-1], widths[1:])))
        self.classifier = nn.Conv2d(self.embed_channels, self.out_channels, kernel_size=1)

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The last stage's map ``[B, mid_channels, h·2^n, w·2^n]`` of ``features[-1]``."""
        return self.stages(features[-1])
