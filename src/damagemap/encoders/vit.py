"""Vision-transformer encoders (timm): DINOv3, DINOv2 and the SAM ViT-B/L/H image encoders.

Each returns ONE map ``[B, C, H/p, W/p]``: for DINO the patch tokens of the last block after
the final norm (class and register tokens dropped); for SAM the neck output (256 channels,
stride 16), which is what the SAM mask decoder consumes. Any input size that is a multiple of
the patch size works: DINOv3 uses RoPE; DINOv2 resizes its position embedding exactly like
facebookresearch/dinov2 (not timm's antialiased resampling); SAM resizes its absolute and
relative position embeddings with timm (identical to the official encoder only at 1024²).

``checkpoint=PATH`` reads the official layouts — DINOv3 and DINOv2 torch.hub ``.pth``, the SAM
``sam_vit_*.pth`` (``image_encoder.`` prefix; a SAM of another size is refused by name), Hugging
Face ``model.safetensors`` (incl. ``SamModel``: :mod:`damagemap.encoders.sam_layouts`) — and timm
state dicts. Official layouts are converted by timm's own ``checkpoint_filter_fn``; Hugging Face
names are first renamed to the official ones (:mod:`damagemap.encoders.hf_layouts`). Without a
checkpoint, ``pretrained=True`` downloads timm's weights (needs the network). Keyword arguments
(``embed_dim``, ``depth``, ``num_heads``, ``img_size`` …) go to ``timm.create_model`` so tests
can build tiny models.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F

from damagemap.encoders.base import Encoder, EncoderSpec
from damagemap.encoders.checkpoints import (
    StateDict,
    adapt_in_chans,
    extend_stats,
    hub_create,
    load_into,
    load_state_dict,
    resolve_checkpoint,
    sha256_file,
    strip_prefix,
)
from damagemap.encoders.hf_layouts import (
    hf_dinov2_to_official,
    hf_dinov3_to_official,
    is_hf_dinov2,
    is_hf_dinov3,
)
from damagemap.encoders.sam_layouts import check_sam_size, hf_sam_encoder_to_official, is_hf_sam
from damagemap.errors import CheckpointError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SAT493M_MEAN = (0.430, 0.411, 0.296)
SAT493M_STD = (0.213, 0.156, 0.143)

if TYPE_CHECKING:  # timm is imported when a ViT is built: importing it costs ~190 MB (torchvision)
    from timm.models import eva, vision_transformer, vision_transformer_sam

    DinoViT = vision_transformer.VisionTransformer | eva.Eva
    """timm classes of the DINO variants: DINOv2 ``VisionTransformer``, DINOv3 ``Eva``."""
    TimmViT = DinoViT | vision_transformer_sam.VisionTransformerSAM
    """timm classes of every registered variant (SAM: ``VisionTransformerSAM``)."""


@dataclass(frozen=True)
class ViTVariant:
    """A registered ViT: timm architecture, timm pretrained tag, patch size, normalisation."""

    family: str  # "dinov3" | "dinov2" | "sam"
    arch: str
    hub_tag: str
    patch: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    description: str = ""


VARIANTS: dict[str, ViTVariant] = {
    "dinov3-vits16": ViTVariant(
        "dinov3", "vit_small_patch16_dinov3", "lvd1689m", 16, description="DINOv3 ViT-S/16 (LVD-1689M), 384 ch"
    ),
    "dinov3-vitb16": ViTVariant(
        "dinov3", "vit_base_patch16_dinov3", "lvd1689m", 16, description="DINOv3 ViT-B/16 (LVD-1689M), 768 ch"
    ),
    "dinov3-vitl16": ViTVariant(
        "dinov3", "vit_large_patch16_dinov3", "lvd1689m", 16, description="DINOv3 ViT-L/16 (LVD-1689M), 1024 ch"
    ),
    "dinov3-vitl16-sat": ViTVariant(
        "dinov3",
        "vit_large_patch16_dinov3",
        "sat493m",
        16,
        SAT493M_MEAN,
        SAT493M_STD,
        "DINOv3 ViT-L/16 satellite (SAT-493M), 1024 ch",
    ),
    "dinov2-vits14": ViTVariant(
        "dinov2", "vit_small_patch14_dinov2", "lvd142m", 14, description="DINOv2 ViT-S/14, 384 ch"
    ),
    "dinov2-vitb14": ViTVariant(
        "dinov2", "vit_base_patch14_dinov2", "lvd142m", 14, description="DINOv2 ViT-B/14, 768 ch"
    ),
    "sam-vitb": ViTVariant(
        "sam",
        "samvit_base_patch16",
        "sa1b",
        16,
        description="SAM ViT-B/16 image encoder, neck output (conv-LN-conv-LN) 256 ch",
    ),
    "sam-vitl": ViTVariant(
        "sam", "samvit_large_patch16", "sa1b", 16, description="SAM ViT-L/16 image encoder, neck output 256 ch"
    ),
    "sam-vith": ViTVariant(
        "sam", "samvit_huge_patch16", "sa1b", 16, description="SAM ViT-H/16 image encoder, neck output 256 ch"
    ),
}


class ViTEncoder(Encoder):
    """One ``[B, C, H/p, W/p]`` map from a timm ViT."""

    def __init__(self, name: str, variant: ViTVariant, model: TimmViT, in_chans: int) -> None:
        super().__init__(extend_stats(variant.mean, in_chans), extend_stats(variant.std, in_chans))
        self.name = name
        self.family = variant.family
        self.in_chans = in_chans
        self.model = model
        self.size_multiple = variant.patch
        self.strides = (variant.patch,)
        if variant.family == "sam":
            self.channels = (int(model.num_features),)  # the neck width (256 for SAM)
        else:
            self.channels = (int(model.embed_dim),)

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Patch-token map (DINO) or neck map (SAM) of a normalised batch."""
        if self.family == "sam":
            return [self.model.forward_features(x)]
        b, _, h, w = x.shape
        model = cast("DinoViT", self.model)  # the family is not "sam"
        if self.family == "dinov2":
            tokens = _dinov2_features(cast("vision_transformer.VisionTransformer", model), x)
        else:
            tokens = model.forward_features(x)
        tokens = tokens[:, model.num_prefix_tokens :]
        p = self.size_multiple
        return [tokens.reshape(b, h // p, w // p, -1).permute(0, 3, 1, 2).contiguous()]


def _dinov2_pos_embed(model: vision_transformer.VisionTransformer, h: int, w: int) -> torch.Tensor:
    """The position embedding for an ``h × w`` patch grid, interpolated like official DINOv2.

    facebookresearch/dinov2 resizes with ``scale_factor=(h + 0.1) / M`` (bicubic, no
    antialiasing); timm's default resampling (size-based, antialiased) gives different
    features whenever the grid differs from the pretraining grid.
    """
    pos = model.pos_embed
    if pos is None:
        raise ValueError("DINOv2 model without a position embedding")
    n_prefix = 0 if model.no_embed_class else model.num_prefix_tokens
    prefix, patch = pos[:, :n_prefix], pos[:, n_prefix:]
    m = int(round(patch.shape[1] ** 0.5))
    if (h, w) == (m, m):
        return pos
    dim = patch.shape[-1]
    grid = patch.float().reshape(1, m, m, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((h + 0.1) / m, (w + 0.1) / m), mode="bicubic", antialias=False)
    if tuple(grid.shape[-2:]) != (h, w):  # cannot happen with the 0.1 offset; be explicit
        grid = F.interpolate(
            patch.float().reshape(1, m, m, dim).permute(0, 3, 1, 2), size=(h, w), mode="bicubic", antialias=False
        )
    grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, dim).to(pos.dtype)
    return torch.cat([prefix, grid], dim=1)


def _dinov2_features(model: vision_transformer.VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """Timm ``VisionTransformer.forward_features`` with the official DINOv2 pos-embed resizing."""
    x = model.patch_embed(x)  # [B, H, W, C] (dynamic_img_size)
    b, h, w, c = x.shape
    pos = _dinov2_pos_embed(model, h, w)
    x = x.reshape(b, h * w, c)
    prefix = [t.expand(b, -1, -1) for t in (model.cls_token, model.reg_token) if t is not None]
    x = torch.cat(prefix + [x + pos], dim=1) if model.no_embed_class else torch.cat(prefix + [x], dim=1) + pos
    x = model.norm_pre(model.patch_drop(model.pos_drop(x)))
    return model.norm(model.blocks(x))


# -- checkpoint layouts -------------------------------------------------------------------------
def _canonical(family: str, state: StateDict, path: Path) -> StateDict:
    """HF names -> official names; unwrap SAM / timm prefixes. Official and timm layouts pass."""
    unknown: list[str] = []
    if family == "dinov3" and is_hf_dinov3(state):
        state, unknown = hf_dinov3_to_official(state)
    elif family == "dinov2" and is_hf_dinov2(state):
        state, unknown = hf_dinov2_to_official(state)
    elif family == "sam" and is_hf_sam(state):
        state = hf_sam_encoder_to_official(state, path)
    elif family == "sam" and "image_encoder.patch_embed.proj.weight" not in state:
        state = strip_prefix(state, ("model.", "backbone.", "encoder."))
    else:
        state = strip_prefix(state, ("model.", "backbone.", "encoder.", "teacher.backbone."))
    if unknown:
        raise CheckpointError(path, "unrecognised Hugging Face keys", unexpected=unknown)
    return state


def _arch_options(family: str, arch: str, state: StateDict | None) -> tuple[str, dict[str, Any]]:
    """Pick the timm architecture variant the checkpoint needs (qkv bias, register tokens)."""
    options: dict[str, Any] = {}
    if family == "dinov3":
        options["dynamic_img_size"] = True
        if state is not None:
            bias = state.get("blocks.0.attn.qkv.bias")
            mask = state.get("blocks.0.attn.qkv.bias_mask")
            if bias is not None and mask is not None:
                bias = bias * torch.nan_to_num(mask.to(bias.dtype))
            nonzero_bias = bias is not None and bool(bias.abs().sum() > 0)
            if nonzero_bias or "blocks.0.attn.q_bias" in state:
                arch += "_qkvb"
            tokens = state.get("storage_tokens", state.get("reg_token"))
            options["num_reg_tokens"] = 0 if tokens is None else int(tokens.shape[1])
    elif family == "dinov2":
        options["dynamic_img_size"] = True
        tokens = state.get("register_tokens", state.get("reg_token")) if state is not None else None
        if tokens is not None:
            arch = arch.replace("_patch14_", "_patch14_reg4_")
            options["reg_tokens"] = int(tokens.shape[1])
    return arch, options


def _to_timm(family: str, state: StateDict, model: TimmViT) -> StateDict:
    """Convert an official / timm-layout state dict with timm's own filter for the family."""
    from timm.models import eva, vision_transformer, vision_transformer_sam

    if family == "dinov3":
        if "storage_tokens" in state or "blocks.0.ls1.gamma" in state:  # official layout
            dino = cast("eva.Eva", model)
            if dino.cls_token is None:
                raise ValueError("DINOv3 model without a class token")
            state = dict(state)
            state.setdefault("storage_tokens", dino.cls_token.new_zeros(1, 0, dino.embed_dim))
            # drop an all-zero (masked) qkv bias when the model has none, quietly
            if getattr(dino.blocks[0].attn, "q_bias", None) is None:
                state = {k: v for k, v in state.items() if not k.endswith("attn.qkv.bias")}
            state = eva.checkpoint_filter_fn(state, model)
            if "reg_token" in state and state["reg_token"].shape[1] == 0:
                del state["reg_token"]
        return state
    if family == "dinov2":
        return vision_transformer.checkpoint_filter_fn(dict(state), cast("vision_transformer.VisionTransformer", model))
    return vision_transformer_sam.checkpoint_filter_fn(state, model)


def build_vit(
    name: str,
    checkpoint: str | Path | None = None,
    pretrained: bool = True,
    in_chans: int = 3,
    **kwargs: Any,
) -> ViTEncoder:
    """Build a registered ViT encoder.

    Args:
        name: a key of :data:`VARIANTS`.
        checkpoint: official (torch.hub / SAM), Hugging Face safetensors or timm state dict.
        pretrained: without a checkpoint, download timm's weights (needs network).
        in_chans: input bands; extra bands reuse the RGB patch-embedding filters.
        **kwargs: passed to ``timm.create_model`` (e.g. tiny test configs).
    """
    import timm

    variant = VARIANTS[name]
    path = resolve_checkpoint(checkpoint) if checkpoint is not None else None
    state = _canonical(variant.family, load_state_dict(path), path) if path is not None else None
    arch, options = _arch_options(variant.family, variant.arch, state)
    options.update(num_classes=0, in_chans=in_chans, **kwargs)
    if state is None and pretrained:
        module = hub_create(name, f"{arch}.{variant.hub_tag}", **options)
    else:
        module = timm.create_model(arch, pretrained=False, **options)
    model = cast("TimmViT", module)  # every registered architecture is one of these timm classes
    sha = None
    if path is not None and state is not None:
        try:
            converted = _to_timm(variant.family, state, model)
        except (KeyError, RuntimeError, ValueError, AttributeError) as exc:
            raise CheckpointError(
                path, f"cannot convert checkpoint to the {arch} layout ({type(exc).__name__}: {exc})"
            ) from exc
        if variant.family == "sam":
            check_sam_size(converted, int(model.embed_dim), len(model.blocks), name, path)
        load_into(model, adapt_in_chans(converted, "patch_embed.proj.weight", in_chans), path)
        sha = sha256_file(path)
    encoder = ViTEncoder(name, variant, model, in_chans)
    encoder.checkpoint_sha256 = sha
    return encoder


SPECS = [
    EncoderSpec(
        name=name,
        builder=partial(build_vit, name),
        family=variant.family,
        description=f"{variant.description}, one map at stride {variant.patch}. Weights: "
        "checkpoint=PATH (official .pth, HF safetensors or timm) or a hub download.",
    )
    for name, variant in VARIANTS.items()
]
