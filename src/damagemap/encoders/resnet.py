"""ResNet encoders (timm): 4 maps at strides 4, 8, 16, 32.

ImageNet weights are not embedded: offline, ``pretrained=True`` without a checkpoint fails with
a :class:`~damagemap.errors.CheckpointError` (hub unreachable), and ``pretrained=False`` gives a
random initialisation. ``checkpoint=PATH`` accepts a timm or torchvision ResNet state dict (the
two share key names); the classifier ``fc.*`` is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from damagemap.encoders.base import Encoder, EncoderSpec
from damagemap.encoders.checkpoints import (
    adapt_in_chans,
    extend_stats,
    hub_create,
    level_indices,
    load_into,
    load_state_dict,
    resolve_checkpoint,
    sha256_file,
    strip_prefix,
    timm_feature_info,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_ARCHS = {"resnet18": "resnet18", "resnet152": "resnet152"}


class ResNetEncoder(Encoder):
    """A timm ResNet as a 4-level feature pyramid."""

    def __init__(self, name: str, body: nn.Module, in_chans: int = 3) -> None:
        mean, std = extend_stats(IMAGENET_MEAN, in_chans), extend_stats(IMAGENET_STD, in_chans)
        super().__init__(mean, std)
        self.name = name
        self.in_chans = in_chans
        self.body = body
        self.channels = tuple(timm_feature_info(body).channels())
        self.strides = tuple(timm_feature_info(body).reduction())
        self.size_multiple = 32

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of a normalised batch."""
        return list(self.body(x))


def build_resnet(
    name: str,
    checkpoint: str | Path | None = None,
    pretrained: bool = True,
    in_chans: int = 3,
    levels: Sequence[int] | None = None,
    **kwargs: Any,
) -> ResNetEncoder:
    """Build a ResNet encoder.

    Args:
        name: ``"resnet18"`` or ``"resnet152"``.
        checkpoint: a timm / torchvision ResNet state dict.
        pretrained: without a checkpoint, download timm's ImageNet weights (needs network).
        in_chans: input bands; extra bands reuse the RGB stem filters.
        levels: maps to return as log2 of their stride (default strides 4…32; 1 adds stride 2).
        **kwargs: passed to ``timm.create_model``.
    """
    arch = _ARCHS[name]
    options = dict(features_only=True, out_indices=level_indices(levels), in_chans=in_chans, **kwargs)
    sha = None
    if checkpoint is None and pretrained:
        body = hub_create(name, arch, **options)
    else:
        import timm  # imported when a ResNet is built (~190 MB with torchvision)

        body = timm.create_model(arch, pretrained=False, **options)
    if checkpoint is not None:
        path = resolve_checkpoint(checkpoint)
        state = strip_prefix(load_state_dict(path), ("model.", "backbone.", "encoder.", "body."))
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        load_into(body, adapt_in_chans(state, "conv1.weight", in_chans), path)
        sha = sha256_file(path)
    encoder = ResNetEncoder(name, body, in_chans)
    encoder.checkpoint_sha256 = sha
    return encoder


SPECS = [
    EncoderSpec(
        name="resnet18",
        builder=partial(build_resnet, "resnet18"),
        family="resnet",
        description="ResNet-18 (timm); 4 maps, channels 64/128/256/512 at strides 4/8/16/32. "
        "ImageNet weights need network or checkpoint=PATH (timm/torchvision layout); "
        "pretrained=False gives random weights.",
    ),
    EncoderSpec(
        name="resnet152",
        builder=partial(build_resnet, "resnet152"),
        family="resnet",
        description="ResNet-152 (timm); 4 maps, channels 256/512/1024/2048 at strides 4/8/16/32. "
        "ImageNet weights need network or checkpoint=PATH (timm/torchvision layout); "
        "pretrained=False gives random weights.",
    ),
]
