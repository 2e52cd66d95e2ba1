"""SAM checkpoint layouts: official ``sam_vit_*.pth`` ↔ Hugging Face ``SamModel`` ↔ timm/transformers.

Three name spaces meet here:

* the **official** segment-anything checkpoint (``image_encoder.*``, ``prompt_encoder.*``,
  ``mask_decoder.*``), which timm's ``samvit`` filter reads for the image encoder;
* Hugging Face ``SamModel`` safetensors (``vision_encoder.*``, ``prompt_encoder.*``,
  ``mask_decoder.*``, ``shared_image_embedding.*``);
* the transformers ``SamMaskDecoder`` / prompt-encoder modules the SAM decoder head is built
  from (HF names, without the ``mask_decoder.`` prefix).

Renames are exact (fixed tables + regular expressions); anything not recognised is reported, so a
foreign file fails with a :class:`~damagemap.errors.CheckpointError` instead of loading partly.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from damagemap.errors import CheckpointError

StateDict = dict[str, torch.Tensor]

SAM_SIZES = {768: "ViT-B", 1024: "ViT-L", 1280: "ViT-H"}
"""SAM image-encoder width → model size name (official checkpoints)."""

# -- image encoder: HF vision_encoder.* -> official image_encoder.* -----------------------------
_HF_ENCODER = [
    (r"^vision_encoder\.patch_embed\.projection\.", "image_encoder.patch_embed.proj."),
    (r"^vision_encoder\.pos_embed$", "image_encoder.pos_embed"),
    (r"^vision_encoder\.layers\.(\d+)\.layer_norm1\.", r"image_encoder.blocks.\1.norm1."),
    (r"^vision_encoder\.layers\.(\d+)\.layer_norm2\.", r"image_encoder.blocks.\1.norm2."),
    (r"^vision_encoder\.layers\.(\d+)\.attn\.", r"image_encoder.blocks.\1.attn."),
    (r"^vision_encoder\.layers\.(\d+)\.mlp\.", r"image_encoder.blocks.\1.mlp."),
    (r"^vision_encoder\.neck\.conv1\.", "image_encoder.neck.0."),
    (r"^vision_encoder\.neck\.layer_norm1\.", "image_encoder.neck.1."),
    (r"^vision_encoder\.neck\.conv2\.", "image_encoder.neck.2."),
    (r"^vision_encoder\.neck\.layer_norm2\.", "image_encoder.neck.3."),
]

# -- mask decoder: official mask_decoder.* -> transformers SamMaskDecoder names ------------------
_OFFICIAL_DECODER = [
    (r"\.norm(\d)\.", r".layer_norm\1."),
    (r"\.norm_final_attn\.", ".layer_norm_final_attn."),
    (r"^output_upscaling\.0\.", "upscale_conv1."),
    (r"^output_upscaling\.1\.", "upscale_layer_norm."),
    (r"^output_upscaling\.3\.", "upscale_conv2."),
    # 3-layer MLPs: layers.0 / 1 / 2 -> proj_in / layers.0 / proj_out (not transformer.layers.*)
    (r"^(output_hypernetworks_mlps\.\d+|iou_prediction_head)\.layers\.0\.", r"\1.proj_in."),
    (r"^(output_hypernetworks_mlps\.\d+|iou_prediction_head)\.layers\.1\.", r"\1.layers.0."),
    (r"^(output_hypernetworks_mlps\.\d+|iou_prediction_head)\.layers\.2\.", r"\1.proj_out."),
]


def _rename(state: StateDict, rules: list[tuple[str, str]]) -> StateDict:
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def is_hf_sam(state: StateDict) -> bool:
    """Whether ``state`` is a Hugging Face ``SamModel`` / ``SamVisionModel`` state dict."""
    return any(k.startswith("vision_encoder.") for k in state)


def hf_sam_encoder_to_official(state: StateDict, path: Path | None = None) -> StateDict:
    """The ``vision_encoder.*`` part of an HF SAM state dict, renamed to ``image_encoder.*``."""
    part = {k: v for k, v in state.items() if k.startswith("vision_encoder.")}
    renamed = _rename(part, _HF_ENCODER)
    unknown = [k for k, n in zip(part, renamed) if not n.startswith("image_encoder.")]
    if unknown:
        raise CheckpointError(path, "unrecognised Hugging Face SAM vision-encoder keys", unexpected=unknown)
    return renamed


def check_sam_size(state: StateDict, embed_dim: int, depth: int, name: str, path: Path | None) -> None:
    """Refuse a SAM image-encoder checkpoint of another size than the encoder being built.

    ``state`` is in the official / timm layout (``patch_embed.proj.weight``, ``blocks.<i>.``).
    """
    weight = state.get("patch_embed.proj.weight", state.get("image_encoder.patch_embed.proj.weight"))
    if weight is None:
        return  # not a SAM encoder state dict; the strict loader reports the missing keys
    blocks = {int(m.group(1)) for k in state if (m := re.search(r"blocks\.(\d+)\.", k))}
    got_dim, got_depth = int(weight.shape[0]), (max(blocks) + 1 if blocks else 0)
    if (got_dim, got_depth) != (embed_dim, depth):
        got = SAM_SIZES.get(got_dim, "an unknown size")
        want = SAM_SIZES.get(embed_dim, "another size")
        raise CheckpointError(
            path,
            f"checkpoint is a SAM {got} image encoder ({got_dim} ch, {got_depth} blocks) but "
            f"encoder {name} is SAM {want} ({embed_dim} ch, {depth} blocks); pick the matching "
            "sam-vitb / sam-vitl / sam-vith encoder",
        )


def sam_decoder_state(state: StateDict, path: Path | None) -> StateDict:
    """Mask-decoder + no-mask-embedding weights in the SAM decoder head's own names.

    Accepts the official layout (``mask_decoder.*``, ``prompt_encoder.no_mask_embed.weight``,
    ``prompt_encoder.pe_layer.positional_encoding_gaussian_matrix``) and the HF ``SamModel``
    layout (``mask_decoder.*``, ``prompt_encoder.no_mask_embed.weight``,
    ``shared_image_embedding.positional_embedding``). Returns keys ``mask_decoder.*``,
    ``no_mask_embed.weight`` and ``pe.positional_embedding``.
    """
    decoder = {k[len("mask_decoder.") :]: v for k, v in state.items() if k.startswith("mask_decoder.")}
    if not decoder:
        raise CheckpointError(path, "no mask_decoder.* weights: not a SAM (official or Hugging Face) checkpoint")
    official = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix" in state
    pe: torch.Tensor | None
    if official:
        decoder = _rename(decoder, _OFFICIAL_DECODER)
        pe = state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
    else:
        pe = state.get(
            "shared_image_embedding.positional_embedding",
            state.get("prompt_encoder.shared_embedding.positional_embedding"),
        )
    no_mask = state.get("prompt_encoder.no_mask_embed.weight")
    if no_mask is None or pe is None:
        missing = [
            n
            for n, t in (
                ("prompt_encoder.no_mask_embed.weight", no_mask),
                ("positional embedding (pe_layer / shared_image_embedding)", pe),
            )
            if t is None
        ]
        raise CheckpointError(path, "SAM checkpoint lacks prompt-encoder weights", missing=missing)
    out = {f"mask_decoder.{k}": v for k, v in decoder.items()}
    out["no_mask_embed.weight"] = no_mask
    out["pe.positional_embedding"] = pe
    return out
