"""EfficientNet-Lite0/2 feature extractors in plain torch, with timm's module names and key layout.

The reference is timm's ``tf_efficientnet_lite{0,2}`` built with ``features_only=True``: same
blocks, same TensorFlow "same" padding on strided convolutions, same BatchNorm epsilon, same
state-dict keys (``conv_stem``, ``bn1``, ``blocks.S.J.conv_pw`` …), so checkpoints and saved
models load unchanged. It is built here rather than through ``timm.create_model`` because
importing timm imports torchvision and ``torch._dynamo``: about 190 MB of resident memory and
2 s in every process that maps a scene with the default encoder. ``tests/encoders/test_lite_net``
checks keys and outputs against timm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

# per stage: (kernel, stride, blocks, output channels); stage 0 is depthwise-separable, the
# others are inverted residuals with 6x expansion (timm's arch_def after Lite's channel and
# depth multipliers: lite0 1.0/1.0, lite2 1.1/1.2, first and last stage not repeated)
STAGES: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "efficientnet-lite0": (
        (3, 1, 1, 16), (3, 2, 2, 24), (5, 2, 2, 40), (3, 2, 3, 80), (5, 1, 3, 112), (5, 2, 4, 192), (3, 1, 1, 320)
    ),
    "efficientnet-lite2": (
        (3, 1, 1, 16), (3, 2, 3, 24), (5, 2, 3, 48), (3, 2, 4, 88), (5, 1, 4, 120), (5, 2, 5, 208), (3, 1, 1, 352)
    ),
}  # fmt: skip
STEM_CHANNELS = 32
EXPANSION = 6
BN_EPS = 1e-3
FEATURE_STAGES = (0, 1, 2, 4, 6)
"""Feature index ``i`` (timm's ``out_indices``) is the output of stage ``FEATURE_STAGES[i]``: strides 2…32."""


class SamePadConv2d(nn.Conv2d):
    """A convolution with TensorFlow "same" padding computed from the input size (more on the bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve as TensorFlow's "same" padding would, without copying ``x`` into a padded tensor.

        "Same" pads ``p`` before and ``p`` or ``p + 1`` after along each axis. The extra pixel
        after is obtained by padding symmetrically by the larger amount and putting a zero tap in
        front of the kernel, which shifts the window back by one: the same sums, but no padded
        copy of the (often large) input.
        """
        pads, shifts = [], []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride, strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append(total - total // 2)
            shifts.append(total - 2 * (total // 2))
        if not any(shifts):
            return F.conv2d(x, self.weight, self.bias, self.stride, tuple(pads), self.dilation, self.groups)
        if torch.onnx.is_in_onnx_export():  # the exporter needs a kernel of known shape; ONNX pads natively
            before = [p - s for p, s in zip(pads, shifts)]
            return super().forward(F.pad(x, (before[1], pads[1], before[0], pads[0])))
        weight = F.pad(self.weight, (shifts[1], 0, shifts[0], 0))
        return F.conv2d(x, weight, self.bias, self.stride, tuple(pads), self.dilation, self.groups)


def _conv(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride > 1:
        return SamePadConv2d(c_in, c_out, kernel, stride, padding=0, groups=groups, bias=False)
    return nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False)


class BatchNormAct(nn.BatchNorm2d):
    """BatchNorm then ReLU6 (or nothing), as timm's ``BatchNormAct2d``; ``act`` survives BatchNorm folding."""

    def __init__(self, channels: int, relu6: bool = True) -> None:
        super().__init__(channels, eps=BN_EPS)
        self.act: nn.Module = nn.ReLU6(inplace=True) if relu6 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise, then activate."""
        return self.act(super().forward(x))


class DepthwiseSeparable(nn.Module):
    """Depthwise conv → BN+ReLU6 → pointwise conv → BN (timm's ``DepthwiseSeparableConv``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv_dw = _conv(c_in, c_in, kernel, stride, groups=c_in)
        self.bn1 = BatchNormAct(c_in)
        self.conv_pw = _conv(c_in, c_out)
        self.bn2 = BatchNormAct(c_out, relu6=False)
        self.has_skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output (plus ``x`` when the shape is kept)."""
        y = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return x + y if self.has_skip else y


class InvertedResidual(nn.Module):
    """Expand 1×1 → depthwise → project 1×1, residual when the shape is kept (timm's ``InvertedResidual``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = c_in * EXPANSION
        self.conv_pw = _conv(c_in, mid)
        self.bn1 = BatchNormAct(mid)
        self.conv_dw = _conv(mid, mid, kernel, stride, groups=mid)
        self.bn2 = BatchNormAct(mid)
        self.conv_pwl = _conv(mid, c_out)
        self.bn3 = BatchNormAct(c_out, relu6=False)
        self.has_skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output (plus ``x`` when the shape is kept)."""
        y = self.bn3(self.conv_pwl(self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))))
        return x + y if self.has_skip else y


class LiteFeatures(nn.Module):
    """The feature maps ``out_indices`` (0…4: strides 2…32) of an EfficientNet-Lite body."""

    def __init__(self, variant: str, in_chans: int = 3, out_indices: Sequence[int] = (1, 2, 3, 4)) -> None:
        super().__init__()
        if variant not in STAGES:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(STAGES)}")
        self.out_indices = tuple(out_indices)
        self.conv_stem = _conv(in_chans, STEM_CHANNELS, 3, 2)
        self.bn1 = BatchNormAct(STEM_CHANNELS)
        stages: list[nn.Module] = []
        c_in, stride_total, strides, channels = STEM_CHANNELS, 2, [], []
        for s, (kernel, stride, repeats, c_out) in enumerate(STAGES[variant]):
            block = DepthwiseSeparable if s == 0 else InvertedResidual
            blocks = [block(c_in if j == 0 else c_out, c_out, kernel, stride if j == 0 else 1) for j in range(repeats)]
            stages.append(nn.Sequential(*blocks))
            c_in, stride_total = c_out, stride_total * stride
            strides.append(stride_total)
            channels.append(c_out)
        self.blocks = nn.Sequential(*stages)
        self._taps = {FEATURE_STAGES[i] for i in self.out_indices}
        self.channels = tuple(channels[FEATURE_STAGES[i]] for i in self.out_indices)
        self.reductions = tuple(strides[FEATURE_STAGES[i]] for i in self.out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of a normalised batch, shallowest first."""
        x = self.bn1(self.conv_stem(x))
        features: list[torch.Tensor] = []
        last = max(self._taps)
        for s, stage in enumerate(self.blocks):
            x = stage(x)
            if s in self._taps:
                features.append(x)
            if s == last:  # deeper stages are not needed
                break
        return features
