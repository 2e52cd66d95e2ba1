"""A small YOLO-style FPN segmenter, trainable end to end from pixels (Smart Transfer baseline).

docs/methods.md §1 lists "a small YOLO-style FPN segmenter" among the baselines. This is a
self-contained re-implementation of the *semantic* part of a YOLOv8-seg-like network, "n"
scale, without any detection branch (no ultralytics dependency, AGPL-free):

- **Backbone** (CSP-Darknet, YOLOv8 style): ``Conv(3×3, s2)`` stem, then 4 stages of
  ``Conv(3×3, s2)`` + C2f (CSP bottleneck with two convolutions, residual bottlenecks), widths
  ``w·(1, 2, 4, 8, 16)`` = 16/32/64/128/256 for ``width=16``, depths ``(1, 2, 2, 1)``
  (YOLOv8n's 3/6/6/3 × 0.33), SPPF at the end. Maps P2…P5 at strides 4/8/16/32.
- **Neck** (PAN-FPN, YOLOv8 style): top-down P5→P4→P3 (nearest upsample, concat, C2f without
  shortcut), then bottom-up P3→P4→P5 (stride-2 conv, concat, C2f).
- **Segmentation** (YOLOv8 ``Proto``-like, semantic): 1×1 laterals bring the three PAN outputs to
  ``embed_channels``, they are upsampled to stride 8 and summed, a 3×3 conv, a 2× upsample to
  stride 4, concatenation with the backbone's stride-4 map P2 (fine detail), a 3×3 conv
  → the embedding ``[B, embed_channels, H/4, W/4]``; a 1×1 conv gives the logits, which
  :meth:`Head.classify` upsamples bilinearly to input size.

Every conv is Conv-BN-SiLU. BatchNorm keeps PyTorch's defaults (momentum 0.1) rather than
YOLOv8's 0.03, which is tuned for very long COCO schedules: with a few hundred CPU steps the
running statistics used at validation would otherwise lag far behind. Weights are
randomly initialised (PyTorch defaults), as the reference code's YOLO-like model is: no
pretrained weights are used, so a recipe's ``encoder.checkpoint`` is refused
(:attr:`YoloFPNHead.no_backbone_checkpoint`) and :attr:`YoloFPNHead.init_note` is always
``"random init"``. About 2.4 M parameters with the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from damagemap.heads.base import Head, single_pixel_map


class ConvBNSiLU(nn.Module):
    """Conv (no bias) → BatchNorm → SiLU, 'same' padding."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Conv → BatchNorm → SiLU."""
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3×3 convs with an optional residual connection."""

    def __init__(self, c: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = ConvBNSiLU(c, c, 3)
        self.cv2 = ConvBNSiLU(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Two 3×3 convs, plus the input when ``shortcut``."""
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """YOLOv8's CSP block: split, ``n`` bottlenecks on one half, concat every stage, 1×1 fuse."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        self.c = c_out // 2
        self.cv1 = ConvBNSiLU(c_in, 2 * self.c, 1)
        self.cv2 = ConvBNSiLU((2 + n) * self.c, c_out, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Split, run the bottlenecks, concatenate every partial output, fuse."""
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained 5×5 max-pools, concat, 1×1 fuse."""

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        c = c_in // 2
        self.cv1 = ConvBNSiLU(c_in, c, 1)
        self.cv2 = ConvBNSiLU(4 * c, c_out, 1)
        self.pool = nn.MaxPool2d(k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Max-pool three times and fuse the four maps."""
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class YoloFPNHead(Head):
    """YOLOv8n-style CSP-Darknet + PAN-FPN semantic segmenter on normalised pixels.

    Args:
        in_channels: channels of the (single) input map, i.e. the number of image bands; the
            ``pixels`` encoder gives ``(in_chans,)``. An int is accepted.
        out_channels: 1 for a binary (sigmoid) head, else the number of classes.
        width: stem width; stage widths are ``width·(2, 4, 8, 16)``.
        depths: bottlenecks in the C2f block of each of the 4 backbone stages (the neck's C2f
            blocks use ``depths[-1]``, as YOLOv8 does).
        embed_channels: width of the segmentation embedding (stride 4).

    Any input size works (maps are upsampled to their partner's size, not by a fixed factor).
    """

    kind = "yolo_fpn"
    no_backbone_checkpoint: ClassVar[str] = (
        "the YOLO-like baseline is randomly initialised, as in the reference code, which has no "
        "ImageNet (or other pretrained) weights for it; remove encoder.checkpoint"
    )
    """Why a recipe's ``encoder.checkpoint`` is refused (there is no pretrained backbone)."""
    init_note: ClassVar[str] = "random init"
    """How the network is initialised, for metrics and reports (always PyTorch defaults)."""

    def __init__(
        self,
        in_channels: int | Sequence[int],
        out_channels: int,
        width: int = 16,
        depths: Sequence[int] = (1, 2, 2, 1),
        embed_channels: int = 64,
    ) -> None:
        super().__init__()
        channels = [in_channels] if isinstance(in_channels, int) else list(in_channels)
        depths = tuple(int(d) for d in depths)
        if len(channels) != 1 or int(channels[0]) < 1:
            raise ValueError(
                "YoloFPNHead takes exactly one input map (the image, from the 'pixels' encoder) "
                f"with >= 1 channel; got channels {channels}"
            )
        if width < 2 or width % 2:
            raise ValueError(f"width must be an even number >= 2, got {width}")
        if len(depths) != 4 or min(depths) < 1:
            raise ValueError(f"depths needs 4 values >= 1 (one per backbone stage), got {depths}")
        if embed_channels < 1 or out_channels < 1:
            raise ValueError(f"embed_channels and out_channels must be >= 1, got {embed_channels}, {out_channels}")
        self.in_channels = (int(channels[0]),)
        self.out_channels = int(out_channels)
        self.width = int(width)
        self.depths = depths
        self.embed_channels = int(embed_channels)
        w = [self.width * m for m in (1, 2, 4, 8, 16)]  # stem, P2, P3, P4, P5
        n_neck = depths[-1]

        # backbone: stem (stride 2) + 4 stages (strides 4, 8, 16, 32)
        self.stem = ConvBNSiLU(self.in_channels[0], w[0], 3, 2)
        self.stages = nn.ModuleList(
            nn.Sequential(ConvBNSiLU(w[i], w[i + 1], 3, 2), C2f(w[i + 1], w[i + 1], depths[i], shortcut=True))
            for i in range(4)
        )
        self.sppf = SPPF(w[4], w[4])
        # neck, top-down
        self.td4 = C2f(w[4] + w[3], w[3], n_neck)
        self.td3 = C2f(w[3] + w[2], w[2], n_neck)
        # neck, bottom-up
        self.down3 = ConvBNSiLU(w[2], w[2], 3, 2)
        self.bu4 = C2f(w[2] + w[3], w[3], n_neck)
        self.down4 = ConvBNSiLU(w[3], w[3], 3, 2)
        self.bu5 = C2f(w[3] + w[4], w[4], n_neck)
        # semantic segmentation branch
        e = self.embed_channels
        self.laterals = nn.ModuleList(nn.Conv2d(c, e, 1) for c in (w[2], w[3], w[4]))
        self.seg8 = ConvBNSiLU(e, e, 3)
        self.seg4 = ConvBNSiLU(e + w[1], e, 3)
        self.classifier = nn.Conv2d(e, self.out_channels, kernel_size=1)

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The segmentation embedding ``[B, embed_channels, ⌈H/4⌉, ⌈W/4⌉]``."""
        x = single_pixel_map(features, self.in_channels[0], "YoloFPNHead")
        x = self.stem(x)
        p2 = self.stages[0](x)
        p3 = self.stages[1](p2)
        p4 = self.stages[2](p3)
        p5 = self.sppf(self.stages[3](p4))
        t4 = self.td4(torch.cat([_up(p5, p4), p4], 1))
        n3 = self.td3(torch.cat([_up(t4, p3), p3], 1))
        n4 = self.bu4(torch.cat([self.down3(n3), t4], 1))
        n5 = self.bu5(torch.cat([self.down4(n4), p5], 1))
        fused = self.laterals[0](n3)
        fused = fused + _up(self.laterals[1](n4), n3) + _up(self.laterals[2](n5), n3)
        y = self.seg8(fused)
        return self.seg4(torch.cat([_up(y, p2), p2], 1))
