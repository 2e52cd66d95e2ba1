"""The identity encoder: normalised pixels, for fully trainable baseline heads.

The Smart Transfer baselines (U-Net/ResNet-18, U-Net/ResNet-152, a YOLO-style FPN segmenter;
docs/methods.md §1) are whole networks trained end to end. They run through the same cached-feature
pipeline as the frozen-encoder methods by pairing this "encoder" — one map at stride 1, the
image normalised with ImageNet statistics — with a head that *is* the whole network
(``unet``, ``yolo_fpn``). The feature cache then simply stores the resized, normalised image,
and the dihedral augmentation applied to cached features is exact for pixels. Data, views,
protocol, metrics and the model artifact are therefore identical to the other methods.

``encoder.checkpoint`` of such a recipe is the *network's* pretrained backbone (e.g. ImageNet
ResNet weights for the U-Net): this encoder has no weights and never reads the file; the training
pipeline hands it to the head (:func:`damagemap.training.pipeline.head_options`), and heads without
a pretrained backbone refuse it there.

Note: the cache stores features as float16, so the network sees the normalised image rounded to
float16 (relative error ≤ 2⁻¹¹, far below 8-bit quantisation of the source imagery).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from damagemap.encoders.base import Encoder, EncoderSpec
from damagemap.encoders.checkpoints import extend_stats
from damagemap.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PixelsEncoder(Encoder):
    """Identity encoder: ``extract(x) = [x]`` on the normalised image (no parameters).

    Args:
        in_chans: number of input bands.
        mean, std: per-band normalisation; default ImageNet RGB statistics, extended to more
            bands with the mean of the RGB values (see
            :func:`~damagemap.encoders.checkpoints.extend_stats`).
    """

    name = "pixels"
    strides = (1,)
    size_multiple = 32  # the baseline networks downsample 5 times

    def __init__(
        self,
        in_chans: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        in_chans = int(in_chans)
        if in_chans < 1:
            raise ValueError(f"pixels encoder needs in_chans >= 1, got {in_chans}")
        mean = extend_stats(IMAGENET_MEAN, in_chans) if mean is None else tuple(mean)
        std = extend_stats(IMAGENET_STD, in_chans) if std is None else tuple(std)
        if len(mean) != in_chans or len(std) != in_chans:
            raise ValueError(
                f"pixels encoder: mean and std need {in_chans} values (one per band), got {len(mean)} and {len(std)}"
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"pixels encoder: std values must be > 0, got {tuple(std)}")
        super().__init__(mean, std)
        self.in_chans = in_chans
        self.channels = (in_chans,)

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The normalised image itself, as the only (stride-1) map."""
        return [x]


def build_pixels(
    checkpoint: str | Path | None = None,
    pretrained: bool = True,
    in_chans: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> PixelsEncoder:
    """Registry builder; ``checkpoint`` and ``pretrained`` are ignored (there are no weights).

    A recipe's ``encoder.checkpoint`` initialises the head's backbone (see the module docstring);
    the file is not opened here, so a saved model loads without it.
    """
    try:
        return PixelsEncoder(in_chans=in_chans, mean=mean, std=std)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


SPECS = [
    EncoderSpec(
        name="pixels",
        builder=build_pixels,
        family="baseline",
        description="identity: normalised pixels for trainable baseline heads",
        offline_weights=True,
    )
]
