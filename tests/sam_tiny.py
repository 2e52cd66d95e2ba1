"""A tiny random SAM (transformers ``SamModel``) and its official / HF checkpoint layouts.

The official layout is written by hand here (the converse of the loader's renames), so the
loader is checked against names it did not produce itself; outputs are compared with
transformers' own ``SamModel``.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

# encoder kwargs for build_encoder("sam-vit*") matching the HF config below
SAM_ENC = dict(
    embed_dim=32,
    depth=2,
    num_heads=2,
    img_size=64,
    global_attn_indexes=(1,),
    window_size=2,
    neck_chans=32,
    mlp_ratio=2.0,
)
SAM_HEAD = dict(mlp_dim=64, num_heads=2, iou_head_hidden_dim=32)


def tiny_sam(seed: int = 0, width: int = 32, depth: int = 2):
    """A random transformers ``SamModel`` (image 64, patch 16, decoder width 32), eval mode."""
    from transformers import SamConfig, SamModel

    cfg = SamConfig(
        vision_config=dict(
            hidden_size=width,
            num_hidden_layers=depth,
            num_attention_heads=2,
            image_size=64,
            patch_size=16,
            output_channels=32,
            global_attn_indexes=[depth - 1],
            window_size=2,
            mlp_dim=2 * width,
            num_pos_feats=16,
        ),
        prompt_encoder_config=dict(hidden_size=32, image_size=64, patch_size=16),
        mask_decoder_config=dict(
            hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )
    torch.manual_seed(seed)
    model = SamModel(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-trivial values everywhere (norms, biases, embeddings)
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


_TO_OFFICIAL = [
    (r"^vision_encoder\.patch_embed\.projection\.", "image_encoder.patch_embed.proj."),
    (r"^vision_encoder\.pos_embed$", "image_encoder.pos_embed"),
    (r"^vision_encoder\.layers\.(\d+)\.layer_norm(\d)\.", r"image_encoder.blocks.\1.norm\2."),
    (r"^vision_encoder\.layers\.", "image_encoder.blocks."),
    (r"^vision_encoder\.neck\.conv1\.", "image_encoder.neck.0."),
    (r"^vision_encoder\.neck\.layer_norm1\.", "image_encoder.neck.1."),
    (r"^vision_encoder\.neck\.conv2\.", "image_encoder.neck.2."),
    (r"^vision_encoder\.neck\.layer_norm2\.", "image_encoder.neck.3."),
    (r"^mask_decoder\.transformer\.layers\.(\d+)\.layer_norm(\d)\.", r"mask_decoder.transformer.layers.\1.norm\2."),
    (r"^mask_decoder\.transformer\.layer_norm_final_attn\.", "mask_decoder.transformer.norm_final_attn."),
    (r"^mask_decoder\.upscale_conv1\.", "mask_decoder.output_upscaling.0."),
    (r"^mask_decoder\.upscale_layer_norm\.", "mask_decoder.output_upscaling.1."),
    (r"^mask_decoder\.upscale_conv2\.", "mask_decoder.output_upscaling.3."),
    (r"\.layers\.0\.(weight|bias)$", r".layers.1.\1"),  # MLP middle layer (before proj_in rename)
    (r"\.proj_in\.", ".layers.0."),
    (r"\.proj_out\.", ".layers.2."),
    (
        r"^prompt_encoder\.shared_embedding\.positional_embedding$",
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    ),
    (r"^prompt_encoder\.point_embed\.", "prompt_encoder.point_embeddings."),
    (r"^prompt_encoder\.mask_embed\.conv1\.", "prompt_encoder.mask_downscaling.0."),
]


def official_state(model) -> dict[str, torch.Tensor]:
    """``sam_vit_*.pth`` key layout of a transformers ``SamModel``."""
    out = {}
    for k, v in model.state_dict().items():
        if (
            k.startswith("shared_image_embedding.")
            or k.startswith("prompt_encoder.mask_embed.conv2")
            or k.startswith("prompt_encoder.mask_embed.conv3")
            or "mask_embed.layer_norm" in k
        ):
            continue
        for pattern, repl in _TO_OFFICIAL:
            k = re.sub(pattern, repl, k)
        out[k] = v.clone()
    return out


def save_official(model, path: Path) -> Path:
    torch.save(official_state(model), path)
    return path


def save_hf(model, folder: Path) -> Path:
    """``save_pretrained`` folder (model.safetensors with the tied embedding stored once)."""
    model.save_pretrained(folder)
    return folder / "model.safetensors"
