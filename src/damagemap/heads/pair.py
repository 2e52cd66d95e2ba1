"""Pre/post change input: fuse the frozen encoder's maps of both images, then decode as usual.

A pair recipe (``input.pair: true``) sends the post-event and the pre-event view through the same
encoder; the head receives the post levels followed by the pre levels (``2·L`` maps) and
:class:`PairHead` fuses them level by level before any other head (FPN, progressive, …) decodes
the result. Fusions (``input.fusion``):

* ``concat`` — post ‖ pre ‖ |post − pre| (3C channels per level): the absolute difference makes
  change explicit, the two originals keep what the change is (rubble vs new roof);
* ``difference`` — post ‖ |post − pre| (2C): cheaper, keeps the post appearance;
* ``learned`` — the ``concat`` stack through a trained 1×1 conv + BatchNorm + ReLU back to C
  channels, so the inner head is as small as a post-only one.

Misregistration: the fusion is per pixel of each feature level, so a shift of the pre image by
less than a level's stride (4 px at the finest level of the lite encoders, 32 px at the deepest)
mostly moves features within a cell; larger shifts turn unchanged buildings into "change"
(``benchmarks/pair_misregistration.py`` measures the score at 2, 4 and 8 px).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from damagemap.heads.base import Head

Fusion = Literal["concat", "difference", "learned"]
FUSIONS: tuple[str, ...] = ("concat", "difference", "learned")


def fused_channels(channels: int, fusion: str) -> int:
    """Channels of one fused level for ``channels`` per image."""
    return {"concat": 3 * channels, "difference": 2 * channels, "learned": channels}[fusion]


class PairHead(Head):
    """Fuse post and pre encoder maps per level, then run the ``inner`` head on the fused maps.

    Args:
        in_channels: channels of each encoder map of *one* image, finest first.
        out_channels: 1 for binary heads, else the number of classes.
        inner: kind of the decoding head (a key of :data:`damagemap.heads.HEADS`).
        fusion: ``concat``, ``difference`` or ``learned`` (see the module docstring).
        inner_options: options of the inner head (as ``head.options`` in a recipe).
    """

    kind = "pair"

    def __init__(
        self,
        in_channels: int | Sequence[int],
        out_channels: int,
        inner: str = "fpn",
        fusion: str = "concat",
        inner_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        from damagemap.heads import build_head  # the registry imports this module

        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        if inner == self.kind:
            raise ValueError("the inner head of a pair head cannot be another pair head")
        channels = [in_channels] if isinstance(in_channels, int) else list(in_channels)
        self.in_channels = tuple(int(c) for c in channels)
        self.out_channels = int(out_channels)
        self.fusion = fusion
        self.learned = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3 * c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
            for c in (self.in_channels if fusion == "learned" else ())
        )
        self.inner = build_head(
            inner,
            in_channels=[fused_channels(c, fusion) for c in self.in_channels],
            out_channels=out_channels,
            **(inner_options or {}),
        )
        self.embed_channels = self.inner.embed_channels
        self.classifier = nn.Identity()  # the inner head classifies (its classifier is saved once, under inner.)

    def fuse(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The fused maps of ``features`` = post levels followed by pre levels."""
        n = len(self.in_channels)
        if len(features) != 2 * n:
            raise ValueError(
                f"pair head expects {n} post-event and {n} pre-event maps, got {len(features)} maps "
                "(is the pre-event image missing?)"
            )
        fused = []
        for level, (post, pre) in enumerate(zip(features[:n], features[n:])):
            change = (post - pre).abs()
            if self.fusion == "difference":
                fused.append(torch.cat([post, change], dim=1))
                continue
            stacked = torch.cat([post, pre, change], dim=1)
            fused.append(self.learned[level](stacked) if self.fusion == "learned" else stacked)
        return fused

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The inner head's embedding of the fused maps."""
        return self.inner.decode(self.fuse(features))

    def classify(self, embedding: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """The inner head's classifier."""
        return self.inner.classify(embedding, out_size)
