"""The trainable-head interface: encoder feature maps → logits at input size."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Head(nn.Module):
    """A trainable decoder on top of frozen encoder features.

    Subclasses implement :meth:`decode` (features → the decoder's last feature map, used by
    embedding objectives such as DPT) and set :attr:`classifier` (1×1 conv to
    :attr:`out_channels` logits). ``out_channels`` is 1 for binary (sigmoid) heads and the number
    of classes for multi-class (softmax) heads.
    """

    out_channels: int
    embed_channels: int

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The decoder's last feature map ``[B, embed_channels, h, w]``."""
        raise NotImplementedError

    def forward(
        self, features: list[torch.Tensor], out_size: tuple[int, int]
    ) -> torch.Tensor:
        """Logits ``[B, out_channels, *out_size]``."""
        return self.classify(self.decode(features), out_size)

    def classify(self, embedding: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """Apply the classifier and resize logits to ``out_size`` if needed (bilinear)."""
        logits = self.classifier(embedding)
        if tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
        return logits


def single_pixel_map(features: list[torch.Tensor], bands: int, head: str) -> torch.Tensor:
    """The one input map of a trainable end-to-end head (the ``pixels`` encoder's output)."""
    if len(features) != 1:
        raise ValueError(
            f"{head} takes one input map (normalised pixels), got {len(features)} maps; "
            "use the 'pixels' encoder"
        )
    if features[0].shape[1] != bands:
        raise ValueError(f"{head} was built for {bands} bands, got {features[0].shape[1]}")
    return features[0]
