"""The ``atl`` adapter kind: attach :class:`~damagemap.adapters.atl.ATL` to a ViT encoder."""

from __future__ import annotations

from damagemap.adapters.atl import ATL
from damagemap.adapters.registry import register_adapter_kind
from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError


def apply_atl(encoder: Encoder, options: dict) -> None:
    """Add trainable ATL modules (``encoder.atl``) hooked into the encoder's timm ViT.

    ``options`` are :class:`~damagemap.adapters.atl.ATL` keyword arguments (placement, residual,
    prompt_reduction, adapter_reduction, fft_rate).
    """
    vit = getattr(encoder, "model", None)
    if vit is None or not hasattr(vit, "patch_embed") or not hasattr(vit, "blocks"):
        raise ConfigError(f"ATL needs a ViT encoder (SAM, DINOv2, DINOv3); {encoder.name} is not one")
    if hasattr(encoder, "atl"):
        raise ConfigError(f"encoder {encoder.name} already has ATL modules")
    patch = vit.patch_embed.patch_size
    patch = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
    try:
        atl = ATL(int(vit.embed_dim), len(vit.blocks), encoder.in_chans, patch, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid ATL options {options}: {exc}") from None
    encoder.atl = atl.attach(vit)  # registered as a submodule: in parameters() and state_dict()


register_adapter_kind("atl", apply_atl)
