"""Trainable heads: encoder feature maps → logits at input size.

``build_head(**head.config)`` rebuilds any head, so the config saved in a model manifest is all
that is needed to recreate the architecture before loading its weights.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from damagemap.errors import CheckpointError, ConfigError
from damagemap.heads.base import Head
from damagemap.heads.fpn import FPNHead
from damagemap.heads.pair import PairHead
from damagemap.heads.progressive import ProgressiveHead
from damagemap.heads.sam_decoder import SamDecoderHead
from damagemap.heads.segformer_mlp import SegFormerMLPHead
from damagemap.heads.unet import UNetHead
from damagemap.heads.yolo_fpn import YoloFPNHead

HEADS: dict[str, type[Head]] = {
    cls.kind: cls
    for cls in (ProgressiveHead, FPNHead, UNetHead, YoloFPNHead, SegFormerMLPHead, SamDecoderHead, PairHead)
}
"""Head classes by the ``kind`` name used in recipes and manifests."""


def build_head(kind: str, in_channels: Sequence[int], out_channels: int, **options: Any) -> Head:
    """Build a head by kind name.

    Args:
        kind: one of :data:`HEADS`.
        in_channels: channels of each encoder feature map (finest first).
        out_channels: 1 for binary (sigmoid) heads, else the number of classes.
        **options: head-specific options (e.g. ``mid_channels``, ``fpn_channels``).

    Raises:
        ConfigError: unknown kind or option.
    """
    if kind not in HEADS:
        raise ConfigError(f"unknown head kind {kind!r}; known kinds: {', '.join(HEADS)}")
    cls = HEADS[kind]
    fixed = ("in_channels", "out_channels")
    allowed = [p for p in inspect.signature(cls).parameters if p not in fixed]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"head {kind!r}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    try:
        return cls(in_channels=tuple(in_channels), out_channels=out_channels, **options)
    except CheckpointError:  # a head initialised from a checkpoint file (sam_decoder)
        raise
    except ValueError as e:
        raise ConfigError(f"head {kind!r}: {e}") from e


__all__ = [
    "HEADS",
    "FPNHead",
    "Head",
    "PairHead",
    "ProgressiveHead",
    "SamDecoderHead",
    "SegFormerMLPHead",
    "UNetHead",
    "YoloFPNHead",
    "build_head",
]
