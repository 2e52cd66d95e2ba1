"""Patch-embedding adaptation for more than 3 input bands (TransLandSeg on Landslide4Sense).

:func:`adapt_bands` replaces an RGB encoder's first convolution (``patch_embed.proj`` of the
timm ViTs, ``conv_stem`` of EfficientNet-Lite) by :class:`BandAdaptedConv`::

    y = rgb_conv(x[:, rgb]) + extra_conv(x[:, others])

``rgb_conv`` is the original layer, frozen, so the pretrained RGB weights (and its bias) are
kept exactly. ``extra_conv`` is a copy of the layer's geometry (kernel, stride, padding — also
timm's TF-"same" padding) over the non-RGB bands, **without bias**, trainable
(``requires_grad=True``) and initialised to **zeros** by default: the adapted encoder then
computes exactly the pretrained features at the start of training, and gradients still reach
``extra_conv`` (∂y/∂W depends on the input, not on W). ``init="rgb_mean"`` instead gives every
extra band the mean RGB kernel × ``scale`` (default 0.1): a small non-zero start.

The encoder's per-band ``mean``/``std`` are extended to the new band count (RGB statistics at the
RGB positions, their averages elsewhere — the same rule as
:func:`~damagemap.encoders.checkpoints.extend_stats`), ``in_chans`` becomes the band count, and
the fingerprint (feature-cache key) changes, because it hashes the statistics and the state dict
(which now holds ``…rgb_conv.weight`` and ``…extra_conv.weight``).

Saving and restoring go through the adapter registry (:mod:`damagemap.adapters`, kind
``band_adapter``, options ``in_chans``/``rgb``/``init``): a trained model's
``adapter.safetensors`` holds the adapted conv's tensors by parameter name and
``load_model`` re-applies the adapter to the rebuilt 3-band base encoder
(``manifest.encoder.base_in_chans``). :meth:`Encoder.freeze` freezes ``extra_conv`` too
(loaded models are frozen). Training attaches it when a recipe feeds an RGB encoder more than
3 bands (:func:`damagemap.adapters.recipe.attach_recipe_adapters`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError

_CANDIDATES = ("model.patch_embed.proj", "body.conv_stem", "model.conv_stem")


class BandAdaptedConv(nn.Module):
    """``rgb_conv(x[:, rgb]) + extra_conv(x[:, extra])`` — frozen RGB conv, trainable extra conv."""

    rgb_index: torch.Tensor  # buffers registered in __init__
    extra_index: torch.Tensor

    def __init__(
        self, rgb_conv: nn.Conv2d, in_chans: int, rgb: Sequence[int], init: str = "zeros", scale: float = 0.1
    ) -> None:
        super().__init__()
        if rgb_conv.in_channels != 3 or rgb_conv.groups != 1:
            raise ConfigError(f"band adaptation needs a plain 3-band first conv, got {rgb_conv}")
        rgb = [int(i) for i in rgb]
        if len(rgb) != 3 or len(set(rgb)) != 3 or not all(0 <= i < in_chans for i in rgb):
            raise ConfigError(f"rgb positions must be 3 distinct band indices in 0..{in_chans - 1}, got {rgb}")
        extra = [i for i in range(in_chans) if i not in rgb]
        if not extra:
            raise ConfigError(f"band adaptation needs more than 3 bands, got in_chans={in_chans}")
        self.rgb, self.extra = rgb, extra
        # persistent: the band order is part of the state dict, hence of the encoder fingerprint
        self.register_buffer("rgb_index", torch.tensor(rgb))
        self.register_buffer("extra_index", torch.tensor(extra))
        self.rgb_conv = rgb_conv.requires_grad_(False)
        conv = copy.deepcopy(rgb_conv)  # same class: keeps timm's Conv2dSame padding behaviour
        conv.in_channels = len(extra)
        conv.register_parameter("bias", None)
        w = rgb_conv.weight.detach()
        if init == "zeros":
            weight = torch.zeros(w.shape[0], len(extra), *w.shape[2:], dtype=w.dtype)
        elif init == "rgb_mean":
            weight = w.mean(1, keepdim=True).repeat(1, len(extra), 1, 1) * scale
        else:
            raise ConfigError(f"band adapter init must be 'zeros' or 'rgb_mean', got {init!r}")
        conv.weight = nn.Parameter(weight.clone(), requires_grad=True)
        self.extra_conv = conv
        self.init = init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RGB conv on the RGB bands plus the extra conv on the other bands."""
        return self.rgb_conv(x.index_select(1, self.rgb_index)) + self.extra_conv(x.index_select(1, self.extra_index))


def find_first_conv(encoder: Encoder) -> str:
    """Dotted path of the encoder's 3-band input conv (known names first, else the first Conv2d)."""
    names = dict(encoder.named_modules())
    for path in _CANDIDATES:
        if isinstance(names.get(path), nn.Conv2d):
            return path
    for path, module in names.items():
        if isinstance(module, nn.Conv2d) and module.in_channels == encoder.in_chans:
            return path
    raise ConfigError(f"encoder {encoder.name}: no input Conv2d found to adapt")


def adapt_bands(
    encoder: Encoder,
    in_chans: int,
    rgb: Sequence[int],
    init: str = "zeros",
    scale: float = 0.1,
    module: str | None = None,
) -> Encoder:
    """Adapt a 3-band ``encoder`` in place to ``in_chans`` bands whose RGB are at ``rgb``.

    The replaced conv is frozen and ``extra_conv.weight`` trainable; other parameters keep their
    ``requires_grad`` (all ``False`` on a frozen encoder). Returns the same encoder object.
    """
    if encoder.in_chans != 3:
        raise ConfigError(
            f"encoder {encoder.name} already takes {encoder.in_chans} bands; "
            "band adaptation starts from an RGB (3-band) encoder"
        )
    path = module or find_first_conv(encoder)
    parent_path, _, attr = path.rpartition(".")
    parent = encoder.get_submodule(parent_path) if parent_path else encoder
    adapted = BandAdaptedConv(getattr(parent, attr), in_chans, rgb, init, scale)
    setattr(parent, attr, adapted)
    mean, std = _place_stats(encoder.mean, adapted.rgb, in_chans), _place_stats(encoder.std, adapted.rgb, in_chans)
    device = encoder._mean.device
    encoder.base_in_chans = encoder.in_chans  # what the manifest rebuilds
    encoder.mean, encoder.std, encoder.in_chans = mean, std, in_chans
    encoder._mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    encoder._std = torch.tensor(std, device=device).view(1, -1, 1, 1)
    encoder.invalidate_fingerprint()
    return encoder


def _place_stats(values: Sequence[float], rgb: Sequence[int], in_chans: int) -> tuple[float, ...]:
    avg = sum(values) / len(values)
    out = [avg] * in_chans
    for j, i in enumerate(rgb):
        out[i] = float(values[j])
    return tuple(out)


def apply_band_adapter(encoder: Encoder, options: dict) -> None:
    """Adapter kind ``band_adapter``: :func:`adapt_bands` with the recorded options."""
    adapt_bands(
        encoder,
        int(options["in_chans"]),
        options["rgb"],
        options.get("init", "zeros"),
        float(options.get("scale", 0.1)),
    )
