"""Frozen backbones behind one interface (:class:`Encoder`) and a registry."""

from damagemap.encoders.base import Encoder
from damagemap.encoders.registry import DEFAULT_ENCODER, EncoderSpec, build_encoder, list_encoders

__all__ = ["DEFAULT_ENCODER", "Encoder", "EncoderSpec", "build_encoder", "list_encoders"]
