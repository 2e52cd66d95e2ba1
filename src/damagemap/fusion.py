"""Inference-only graph tidying: BatchNorm folded into the convolution before it, channels_last.

In eval mode a BatchNorm is a fixed per-channel affine map, so it can be merged into the
weights and bias of the convolution that feeds it (``torch.nn.utils.fusion``): one pass over
the activations instead of two. timm's ``BatchNormAct2d`` keeps its activation (and dropout)
after folding. A pair is folded only when the convolution is the module registered right before
the BatchNorm in the same parent, feeds it (same channel count) and the BatchNorm is in eval
mode with running statistics — the layout of timm's EfficientNet/ResNet blocks and of
damagemap's heads (``Conv2d → BatchNorm2d → ReLU`` sequences).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and isinstance(bn, nn.BatchNorm2d)
        and not bn.training
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.num_features == conv.out_channels
    )


def _after_fold(bn: nn.BatchNorm2d) -> nn.Module:
    """What replaces a folded BatchNorm: nothing, or timm's dropout + activation of a BatchNormAct2d."""
    act, drop = getattr(bn, "act", None), getattr(bn, "drop", None)
    rest = [m for m in (drop, act) if isinstance(m, nn.Module) and not isinstance(m, nn.Identity)]
    return nn.Sequential(*rest) if rest else nn.Identity()


@torch.no_grad()
def fold_batchnorm(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm into the convolution registered before it (in place); returns how many."""
    folded = 0
    for parent in list(module.modules()):
        children = list(parent.named_children())
        for (_, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if not _foldable(conv, bn):
                continue
            assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
            assert bn.running_mean is not None and bn.running_var is not None
            weight, bias = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
            )
            conv.weight, conv.bias = weight, bias
            setattr(parent, bn_name, _after_fold(bn))
            folded += 1
    return folded


def prepare_for_inference(module: nn.Module, channels_last: bool = True) -> int:
    """Eval mode, gradients off, BatchNorm folded and (by default) channels_last weights; returns the folds."""
    module.eval().requires_grad_(False)
    folded = fold_batchnorm(module)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    return folded


def frozen_inference_copy(module: nn.Module) -> nn.Module:
    """A folded, channels_last copy of a frozen module with BatchNorms; otherwise ``module`` itself.

    For encoding the feature cache: the module keeps its own weights (its fingerprint, any later
    training) and a copy is only made when folding changes something.
    """
    frozen = not any(p.requires_grad for p in module.parameters())
    if module.training or not frozen or not any(isinstance(m, nn.BatchNorm2d) for m in module.modules()):
        return module
    fast = copy.deepcopy(module)
    prepare_for_inference(fast)
    return fast
