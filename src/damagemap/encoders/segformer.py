"""SegFormer Mix-Transformer (MiT-b0 … b5) encoders via Hugging Face ``transformers``.

The encoder is ``transformers.SegformerModel``; its four stage outputs (``hidden_states``,
strides 4, 8, 16, 32) are the feature pyramid, which the SegFormer all-MLP head
(:mod:`damagemap.heads.segformer_mlp`) or the FPN head decodes.

``checkpoint=PATH`` reads a local Hugging Face folder (``config.json`` + ``model.safetensors``
or ``pytorch_model.bin``) such as a download of ``nvidia/mit-b2`` or of a fine-tuned
``SegformerForSemanticSegmentation`` (its ``segformer.`` encoder weights are used, the
``decode_head.`` ones ignored here), or a bare weights file read with the variant's default
config. Loading is strict: missing, unexpected or wrongly-shaped weights raise
:class:`~damagemap.errors.CheckpointError`. Without a checkpoint, ``pretrained=True`` downloads
``nvidia/mit-bN`` (needs the network). Keyword arguments override config fields (tiny tests).
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from damagemap.encoders.base import Encoder, EncoderSpec
from damagemap.encoders.checkpoints import _hub_reachable, resolve_checkpoint, sha256_file
from damagemap.errors import CheckpointError

if TYPE_CHECKING:  # transformers is imported only when a SegFormer is built
    from transformers import SegformerConfig, SegformerModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# MiT variants (Xie et al. 2021, Table 6): stage widths and depths
_WIDE = [64, 128, 320, 512]
VARIANTS: dict[str, dict] = {
    "b0": {"hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b1": {"hidden_sizes": _WIDE, "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b2": {"hidden_sizes": _WIDE, "depths": [3, 4, 6, 3], "decoder_hidden_size": 768},
    "b3": {"hidden_sizes": _WIDE, "depths": [3, 4, 18, 3], "decoder_hidden_size": 768},
    "b4": {"hidden_sizes": _WIDE, "depths": [3, 8, 27, 3], "decoder_hidden_size": 768},
    "b5": {"hidden_sizes": _WIDE, "depths": [3, 6, 40, 3], "decoder_hidden_size": 768},
}


class SegFormerEncoder(Encoder):
    """MiT feature pyramid: 4 maps at strides 4, 8, 16, 32 (``SegformerModel`` hidden states)."""

    def __init__(self, name: str, body: SegformerModel) -> None:
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        self.name = name
        self.body = body
        cfg = body.config
        self.in_chans = int(cfg.num_channels)
        self.channels = tuple(int(c) for c in cfg.hidden_sizes)
        stride, strides = 1, []
        for s in cfg.strides:
            stride *= int(s)
            strides.append(stride)
        self.strides = tuple(strides)
        self.size_multiple = stride

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of a normalised batch."""
        return list(self.body(pixel_values=x, output_hidden_states=True).hidden_states)


def _hf_folder(variant: str, ckpt: Path, overrides: dict, tmp: Path) -> tuple[Path, SegformerConfig]:
    """The HF folder to load and its config; a bare weights file gets the variant's config."""
    from transformers import SegformerConfig

    if ckpt.is_dir():
        if not (ckpt / "config.json").is_file():
            raise CheckpointError(ckpt, "not a Hugging Face model folder (no config.json)")
        try:
            cfg = SegformerConfig.from_pretrained(ckpt, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise CheckpointError(ckpt, f"cannot read config.json as a SegFormer config ({exc})") from None
        if cfg.model_type != "segformer":
            raise CheckpointError(ckpt, f"config.json is a {cfg.model_type!r} model, not segformer")
        for key, value in overrides.items():
            setattr(cfg, key, value)
        return ckpt, cfg
    name = "model.safetensors" if ckpt.suffix == ".safetensors" else "pytorch_model.bin"
    (tmp / name).symlink_to(ckpt.resolve())
    return tmp, SegformerConfig(**(VARIANTS[variant] | overrides))


def _load_strict(folder: Path, cfg: SegformerConfig, where: Path) -> SegformerModel:
    """``SegformerModel.from_pretrained`` (which renames legacy keys), refusing any mismatch."""
    from transformers import SegformerModel
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # we report problems ourselves
    try:
        loaded = SegformerModel.from_pretrained(folder, config=cfg, local_files_only=True, output_loading_info=True)
        # with output_loading_info=True the result is (model, loading info); transformers types only the model
        body, info = cast("tuple[SegformerModel, dict[str, list[Any]]]", loaded)
    except (OSError, RuntimeError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if "mismatched" in msg:
            msg = (
                f"weight shapes differ from the config (hidden_sizes {list(cfg.hidden_sizes)}, "
                f"depths {list(cfg.depths)}): is it the right MiT size?"
            )
        raise CheckpointError(where, f"checkpoint does not match the SegFormer config: {msg}") from None
    finally:
        hf_logging.set_verbosity(level)
    # a SegformerForSemanticSegmentation checkpoint also holds its decode head: not ours here
    unexpected = [k for k in info.get("unexpected_keys", []) if not k.startswith("decode_head.")]
    missing = list(info.get("missing_keys", []))
    mismatched = [str(m) for m in info.get("mismatched_keys", [])]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            where,
            "checkpoint does not match the SegformerModel architecture"
            + (f"; shape mismatches: {', '.join(mismatched[:5])}" if mismatched else ""),
            missing,
            unexpected,
        )
    return body


def build_segformer(
    name: str,
    checkpoint: str | Path | None = None,
    pretrained: bool = True,
    **kwargs: Any,
) -> SegFormerEncoder:
    """Build a MiT encoder from a local checkpoint, the hub (online) or random weights.

    Args:
        name: registry name, ``"segformer-mit-b0"`` … ``"segformer-mit-b5"``.
        checkpoint: Hugging Face folder or weights file (see the module docstring).
        pretrained: without a checkpoint, download ``nvidia/mit-bN`` from the hub.
        **kwargs: ``SegformerConfig`` fields overriding the variant / folder config.
    """
    from transformers import SegformerConfig, SegformerModel

    variant = name.rsplit("-", 1)[-1]
    if checkpoint is None:
        if not pretrained:
            return SegFormerEncoder(name, SegformerModel(SegformerConfig(**(VARIANTS[variant] | kwargs))))
        if not _hub_reachable():
            raise CheckpointError(
                None,
                f"{name}: model hub unreachable; pass checkpoint=PATH to a local "
                f"Hugging Face folder (e.g. a download of nvidia/mit-{variant})",
            )
        return SegFormerEncoder(name, SegformerModel.from_pretrained(f"nvidia/mit-{variant}", **kwargs))
    ckpt = Path(checkpoint)
    if not ckpt.exists():
        raise CheckpointError(ckpt, "checkpoint not found")
    with tempfile.TemporaryDirectory() as tmp:
        folder, cfg = _hf_folder(variant, ckpt, dict(kwargs), Path(tmp))
        body = _load_strict(folder, cfg, ckpt)
    encoder = SegFormerEncoder(name, body.eval())
    encoder.checkpoint_sha256 = sha256_file(resolve_checkpoint(ckpt))
    return encoder


SPECS = [
    EncoderSpec(
        name=f"segformer-mit-{v}",
        builder=partial(build_segformer, f"segformer-mit-{v}"),
        family="segformer",
        description=f"SegFormer MiT-{v.upper()} (transformers), channels "
        f"{'/'.join(map(str, VARIANTS[v]['hidden_sizes']))} at strides 4/8/16/32; checkpoint=HF folder.",
    )
    for v in VARIANTS
]
