"""U-Net baselines (ResNet-18 / ResNet-152 encoder), fully trainable, as a damagemap head.

The Smart Transfer paper compares its frozen-encoder method with U-Nets whose ResNet encoders
are trained end to end (docs/methods.md §1, *Baselines*). Here the U-Net is a :class:`Head` on top
of the ``pixels`` identity encoder, so it trains through the same cached-feature pipeline.
The network is ``segmentation_models_pytorch.Unet`` (smp 0.6), split into its parts:

- ``encoder``: smp's ResNet encoder (torchvision ``ResNet`` without ``fc``/``avgpool``),
- ``decoder``: smp's U-Net decoder (channels 256/128/64/32/16 by default),
- ``classifier``: the conv of smp's segmentation head (3×3, ``decoder_channels[-1]`` → logits).

:meth:`UNetHead.decode` returns the decoder output at input size (16 channels by default) —
the embedding that DPT-style objectives use — and :meth:`Head.classify` applies the classifier.

**Initialisation.** ImageNet ResNet weights cannot be downloaded offline, so the default is a
*random* initialisation: torchvision's ResNet init for the encoder (Kaiming-normal fan-out convs,
BatchNorm weight 1 / bias 0) and smp's own init for decoder (Kaiming-uniform) and segmentation
head (Xavier-uniform) — i.e. ``smp.Unet(encoder_weights=None)``. This is weaker than the
reference code's ImageNet-initialised baselines (``smp.Unet(encoder_weights="imagenet")``), so
:attr:`UNetHead.init_note` says ``"random init"`` and training records it in the model's metrics
and every experiment report row. When a user has ImageNet weights, the recipe's
``encoder.checkpoint: PATH`` (the training pipeline passes it on as ``encoder_checkpoint``, see
:attr:`UNetHead.backbone_checkpoint`; the option can also be given directly) loads a
torchvision or timm ResNet state dict (both use the same key names; ``fc.*`` is ignored; a
``model.``/``backbone.``/``encoder.`` prefix is stripped; for ``in_channels != 3`` the stem is
adapted as for the frozen encoders). The file is
read with ``torch.load(weights_only=True)`` and loaded strictly: any missing, unexpected or
wrongly shaped key raises :class:`~damagemap.errors.CheckpointError` naming the file and keys.

``encoder_checkpoint`` only initialises the weights; it is *not* part of :attr:`UNetHead.config`
(the trained weights are saved with the model, so reloading an artifact must not need the
original checkpoint file). It is kept in :attr:`UNetHead.encoder_checkpoint` (and the recipe)
together with the file's SHA-256 for provenance, and :attr:`UNetHead.init_note` names both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch.nn import functional as F

from damagemap.heads.base import Head, single_pixel_map

ENCODERS = ("resnet18", "resnet152")
"""ResNet encoders of the paper's U-Net baselines."""

_CKPT_PREFIXES = ("model.", "backbone.", "encoder.", "body.")


class UNetHead(Head):
    """Fully trainable U-Net (smp) on normalised pixels.

    Args:
        in_channels: channels of the (single) input map, i.e. the number of image bands; the
            ``pixels`` encoder gives ``(in_chans,)``. An int is accepted.
        out_channels: 1 for a binary (sigmoid) head, else the number of classes.
        encoder_name: ``"resnet18"`` or ``"resnet152"``.
        decoder_channels: smp decoder widths, one per decoder block (5 blocks).
        encoder_checkpoint: optional torchvision/timm ResNet state dict to initialise the
            encoder (see the module docstring); ``None`` = random initialisation.

    Inputs whose height or width is not a multiple of 32 are zero-padded (zero = the dataset
    mean after normalisation) at the bottom/right and the decoder output is cropped back.
    """

    kind = "unet"
    init_only = ("encoder_checkpoint",)
    backbone_checkpoint: ClassVar[str] = "encoder_checkpoint"
    """The option that takes the recipe's ``encoder.checkpoint`` (the ``pixels`` encoder has no
    weights, so a checkpoint there is this network's pretrained backbone)."""
    multiple = 32

    def __init__(
        self,
        in_channels: int | Sequence[int],
        out_channels: int,
        encoder_name: str = "resnet18",
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        encoder_checkpoint: str | Path | None = None,
    ) -> None:
        super().__init__()
        channels = [in_channels] if isinstance(in_channels, int) else list(in_channels)
        if len(channels) != 1 or int(channels[0]) < 1:
            raise ValueError(
                "UNetHead takes exactly one input map (the image, from the 'pixels' encoder) "
                f"with >= 1 channel; got channels {channels}"
            )
        if encoder_name not in ENCODERS:
            raise ValueError(f"encoder_name must be one of {', '.join(ENCODERS)}; got {encoder_name!r}")
        decoder_channels = tuple(int(c) for c in decoder_channels)
        if len(decoder_channels) != 5 or min(decoder_channels) < 1:
            raise ValueError(
                f"decoder_channels needs 5 positive widths (one per decoder block); got {decoder_channels}"
            )
        if int(out_channels) < 1:
            raise ValueError(f"out_channels must be >= 1, got {out_channels}")
        import segmentation_models_pytorch as smp  # slow import: only when a U-Net is built

        self.in_channels = (int(channels[0]),)
        self.out_channels = int(out_channels)
        self.encoder_name = encoder_name
        self.decoder_channels = decoder_channels
        self.embed_channels = decoder_channels[-1]
        net = smp.Unet(
            encoder_name=encoder_name,
            encoder_weights=None,
            encoder_depth=5,
            decoder_channels=decoder_channels,
            in_channels=self.in_channels[0],
            classes=self.out_channels,
        )
        self.encoder = net.encoder
        self.decoder = net.decoder
        self.classifier = net.segmentation_head[0]  # the rest of smp's head is Identity
        self.encoder_checkpoint = None if encoder_checkpoint is None else str(encoder_checkpoint)
        self.encoder_checkpoint_sha256: str | None = None
        if encoder_checkpoint is not None:
            self.load_encoder_checkpoint(encoder_checkpoint)

    def load_encoder_checkpoint(self, path: str | Path) -> None:
        """Load a torchvision/timm ResNet state dict into the encoder (strict).

        Raises:
            CheckpointError: unreadable file, or keys/shapes that do not match the encoder.
        """
        from damagemap.encoders.checkpoints import (
            adapt_in_chans,
            load_into,
            load_state_dict,
            sha256_file,
            strip_prefix,
        )

        path = Path(path)
        state = strip_prefix(load_state_dict(path), _CKPT_PREFIXES)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        load_into(self.encoder, adapt_in_chans(state, "conv1.weight", self.in_channels[0]), path)
        self.encoder_checkpoint = str(path)
        self.encoder_checkpoint_sha256 = sha256_file(path)

    @property
    def init_note(self) -> str:
        """How the network was initialised, for metrics and reports.

        ``"imagenet (<file name>, sha256 <first 12 hex digits>)"`` after
        :meth:`load_encoder_checkpoint` (the file is taken to hold the ImageNet weights the
        recipes ask for), else ``"random init"``.
        """
        if self.encoder_checkpoint is None or self.encoder_checkpoint_sha256 is None:
            return "random init"
        return f"imagenet ({Path(self.encoder_checkpoint).name}, sha256 {self.encoder_checkpoint_sha256[:12]})"

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Smp's decoder output ``[B, decoder_channels[-1], H, W]`` at input size."""
        x = single_pixel_map(features, self.in_channels[0], "UNetHead")
        h, w = x.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        out = self.decoder(self.encoder(x))
        return out[..., :h, :w] if ph or pw else out
