"""SegFormer's all-MLP decoder (Xie et al. 2021) as a head over any multi-scale encoder.

Each encoder map goes through its own Linear layer to a common width, is bilinearly upsampled to
the finest map (stride 4 for MiT and EfficientNet pyramids), the maps are concatenated (coarsest
first, as in the reference code), fused by a 1×1 conv + BatchNorm + ReLU, and a 1×1 classifier
gives the logits, which :meth:`Head.classify` upsamples to the input size.

Parameter names follow the Hugging Face ``SegformerDecodeHead`` (``linear_c.N.proj``,
``linear_fuse``, ``batch_norm``, ``classifier``), so the decode-head weights of a
``SegformerForSemanticSegmentation`` checkpoint load directly when the encoder widths match
(``init_checkpoint``); a classifier trained for another label set is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from damagemap.errors import CheckpointError
from damagemap.heads.base import Head


class _MLP(nn.Module):
    """Linear projection of a ``[B, C, H, W]`` map to ``[B, D, H, W]`` (HF ``SegformerMLP``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.proj(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)


class SegFormerMLPHead(Head):
    """All-MLP decoder.

    Args:
        in_channels: channels of each encoder map, finest first.
        out_channels: 1 for a binary (sigmoid) head, else the number of classes.
        decoder_dim: the common width (SegFormer: 256 for MiT-b0/b1, 768 for b2–b5).
        dropout: dropout before the classifier (SegFormer: 0.1).
        init_checkpoint: optional Hugging Face SegFormer checkpoint (folder or file) whose
            ``decode_head.*`` weights initialise this head. Not part of :attr:`config` — the
            trained weights are saved with the model.
    """

    kind = "segformer_mlp"
    init_only = ("init_checkpoint",)

    def __init__(
        self,
        in_channels: int | Sequence[int],
        out_channels: int,
        decoder_dim: int = 256,
        dropout: float = 0.1,
        init_checkpoint: str | None = None,
    ) -> None:
        super().__init__()
        channels = [in_channels] if isinstance(in_channels, int) else list(in_channels)
        if not channels or decoder_dim < 1 or out_channels < 1 or not 0 <= dropout < 1:
            raise ValueError(
                "SegFormerMLPHead needs in_channels, decoder_dim >= 1, out_channels >= 1 and "
                f"0 <= dropout < 1; got {channels}, {decoder_dim}, {out_channels}, {dropout}"
            )
        self.in_channels = tuple(int(c) for c in channels)
        self.out_channels = int(out_channels)
        self.decoder_dim = self.embed_channels = int(decoder_dim)
        self.dropout_p = float(dropout)
        self.linear_c = nn.ModuleList(_MLP(c, self.decoder_dim) for c in self.in_channels)
        self.linear_fuse = nn.Conv2d(self.decoder_dim * len(self.in_channels), self.decoder_dim, 1, bias=False)
        self.batch_norm = nn.BatchNorm2d(self.decoder_dim)
        self.dropout = nn.Dropout(self.dropout_p)
        self.classifier = nn.Conv2d(self.decoder_dim, self.out_channels, kernel_size=1)
        self.init_notes: list[str] = []
        if init_checkpoint:
            self.init_notes = load_segformer_decode_head(self, init_checkpoint)

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The fused embedding ``[B, decoder_dim, h0, w0]`` at the finest map's size."""
        if len(features) != len(self.in_channels):
            raise ValueError(
                f"SegFormerMLPHead was built for {len(self.in_channels)} feature maps "
                f"(channels {self.in_channels}), got {len(features)}"
            )
        size = features[0].shape[-2:]
        levels = [
            F.interpolate(mlp(f), size=size, mode="bilinear", align_corners=False)
            for mlp, f in zip(self.linear_c, features)
        ]
        fused = torch.relu(self.batch_norm(self.linear_fuse(torch.cat(levels[::-1], dim=1))))
        return self.dropout(fused)


def load_segformer_decode_head(head: SegFormerMLPHead, checkpoint: str | Path) -> list[str]:
    """Copy the ``decode_head.*`` weights of a HF SegFormer checkpoint into ``head``.

    Both the original key names (``linear_c``) and transformers 5 names (``linear_projections``)
    are read. The classifier is loaded only if its shape matches (same number of labels).

    Returns:
        Notes on what was skipped.

    Raises:
        CheckpointError: no decode head in the file, or its widths differ from ``head``'s.
    """
    from damagemap.encoders.checkpoints import load_into, load_state_dict, resolve_checkpoint

    path = resolve_checkpoint(checkpoint)
    state = {
        k[len("decode_head.") :].replace("linear_projections.", "linear_c."): v
        for k, v in load_state_dict(path).items()
        if k.startswith("decode_head.")
    }
    if not state:
        raise CheckpointError(path, "no decode_head.* weights (expected a SegformerForSemanticSegmentation checkpoint)")
    notes = []
    own = head.state_dict()
    for key in ("classifier.weight", "classifier.bias"):
        if key in state and state[key].shape != own[key].shape:
            notes.append(f"classifier {tuple(state[key].shape)} not loaded (head has {tuple(own[key].shape)})")
            state[key] = own[key]
    load_into(head, state, path)
    return notes
