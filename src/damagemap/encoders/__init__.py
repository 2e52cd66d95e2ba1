"""Frozen backbones behind one interface (:class:`Encoder`) and a registry."""

from damagemap.encoders.base import Encoder, EncoderSpec
from damagemap.encoders.registry import DEFAULT_ENCODER, ENCODERS, build_encoder, encoder_options, list_encoders

__all__ = ["DEFAULT_ENCODER", "ENCODERS", "Encoder", "EncoderSpec", "build_encoder", "encoder_options", "list_encoders"]
