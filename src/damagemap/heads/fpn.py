"""A light FPN decoder for multi-scale CNN feature maps (e.g. strides 4, 8, 16, 32)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from damagemap.heads.base import Head


def _conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class FPNHead(Head):
    """Feature-pyramid decoder: laterals, top-down path, smoothing, sum at the finest level.

    1×1 lateral convs bring every map to ``fpn_channels``; a top-down pass adds each coarser level
    (nearest-upsampled) to the next finer one; each level is smoothed by a 3×3 conv-BN-ReLU;
    all levels are bilinearly upsampled to the finest map (stride 4 for usual CNNs) and *summed*
    (cheaper than concat + 1×1); a 3×3 conv-BN-ReLU gives the ``embed_channels`` embedding and a
    1×1 conv the logits, which :meth:`classify` upsamples bilinearly to input size.

    Args:
        in_channels: channels of each encoder map, finest first (as encoders return them).
        out_channels: 1 for a binary (sigmoid) head, else the number of classes.
        fpn_channels: width of the pyramid.
        embed_channels: width of the embedding before the classifier.
    """

    kind = "fpn"

    def __init__(
        self,
        in_channels: int | Sequence[int],
        out_channels: int,
        fpn_channels: int = 64,
        embed_channels: int = 64,
    ) -> None:
        super().__init__()
        channels = [in_channels] if isinstance(in_channels, int) else list(in_channels)
        if not channels or fpn_channels < 1 or embed_channels < 1 or out_channels < 1:
            raise ValueError(
                "FPNHead needs in_channels, fpn_channels >= 1, embed_channels >= 1 and "
                f"out_channels >= 1; got {channels}, {fpn_channels}, {embed_channels}, "
                f"{out_channels}"
            )
        self.in_channels = tuple(int(c) for c in channels)
        self.out_channels = int(out_channels)
        self.fpn_channels = int(fpn_channels)
        self.embed_channels = int(embed_channels)
        self.laterals = nn.ModuleList(nn.Conv2d(c, self.fpn_channels, 1) for c in self.in_channels)
        self.smooth = nn.ModuleList(_conv_bn_relu(self.fpn_channels, self.fpn_channels) for _ in self.in_channels)
        self.fuse = _conv_bn_relu(self.fpn_channels, self.embed_channels)
        self.classifier = nn.Conv2d(self.embed_channels, self.out_channels, kernel_size=1)

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The fused embedding ``[B, embed_channels, h0, w0]`` at the finest map's size."""
        if len(features) != len(self.in_channels):
            raise ValueError(
                f"FPNHead was built for {len(self.in_channels)} feature maps "
                f"(channels {self.in_channels}), got {len(features)}"
            )
        levels = [lateral(f) for lateral, f in zip(self.laterals, features)]
        for i in range(len(levels) - 2, -1, -1):
            coarser = F.interpolate(levels[i + 1], size=levels[i].shape[-2:], mode="nearest")
            levels[i] = levels[i] + coarser
        size = levels[0].shape[-2:]
        fused = self.smooth[0](levels[0])
        for smooth, level in zip(self.smooth[1:], levels[1:]):
            fused = fused + F.interpolate(smooth(level), size=size, mode="bilinear", align_corners=False)
        return self.fuse(fused)
