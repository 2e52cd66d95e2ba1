"""The SAM mask decoder as a prompt-free segmentation head (TransLandSeg, docs/methods.md §2).

Built from transformers' ``SamMaskDecoder`` and ``SamPositionalEmbedding`` (no hand-written
SAM). Prompt-free use as in TransLandSeg: the sparse prompt is empty, the dense prompt is the
learned no-mask embedding (trained), the single-mask output (mask token 0) is taken, and the
stride-4 mask logits are bilinearly upsampled to the input size. The random-Fourier positional
encoding is a fixed buffer in official SAM and stays frozen here, as do the parts that cannot
affect the single mask (IoU head, hypernetwork MLPs of the multimask tokens).

``checkpoint=PATH`` loads ``mask_decoder.*`` + the prompt encoder's no-mask embedding and
positional encoding from an official ``sam_vit_*.pth`` or a Hugging Face ``SamModel``
safetensors file (see :mod:`damagemap.encoders.sam_layouts`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from damagemap.encoders.checkpoints import load_into, load_state_dict
from damagemap.encoders.sam_layouts import sam_decoder_state
from damagemap.heads.base import Head


class SamDecoderHead(Head):
    """Prompt-free SAM mask decoder on one ``[B, C, h, w]`` map (the SAM neck, C = 256).

    Args:
        in_channels: one entry, the decoder width (256 for official SAM).
        out_channels: must be 1 (binary; SAM's single-mask output).
        mlp_dim, num_layers, num_heads, iou_head_hidden_dim: decoder size (official defaults).
        checkpoint: official SAM ``.pth`` or HF ``SamModel`` safetensors to initialise from.
    """

    kind = "sam_decoder"
    init_only = ("checkpoint",)

    def __init__(
        self,
        in_channels: tuple[int, ...],
        out_channels: int = 1,
        mlp_dim: int = 2048,
        num_layers: int = 2,
        num_heads: int = 8,
        iou_head_hidden_dim: int = 256,
        checkpoint: str | None = None,
    ) -> None:
        # transformers is imported here, not at module level: the head registry imports every head
        from transformers.models.sam.configuration_sam import SamMaskDecoderConfig, SamVisionConfig
        from transformers.models.sam.modeling_sam import SamMaskDecoder, SamPositionalEmbedding

        super().__init__()
        if len(in_channels) != 1:
            raise ValueError(f"the SAM decoder takes one feature map, got {len(in_channels)}")
        if out_channels != 1:
            raise ValueError("the SAM decoder head is binary (one mask output); use 2 classes")
        width = int(in_channels[0])
        self.out_channels = self.embed_channels = 1
        self.in_channels = (width,)
        # the checkpoint only initialises: a saved model's head weights are in head.safetensors,
        # so the manifest config rebuilds the architecture without needing the SAM file
        cfg = SamMaskDecoderConfig(
            hidden_size=width,
            mlp_dim=mlp_dim,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            iou_head_hidden_dim=iou_head_hidden_dim,
        )
        cfg._attn_implementation = "sdpa"
        self.mask_decoder = SamMaskDecoder(cfg)
        self.no_mask_embed = nn.Embedding(1, width)
        self.pe = SamPositionalEmbedding(SamVisionConfig(num_pos_feats=width // 2))
        if checkpoint is not None:
            path = Path(checkpoint)
            load_into(self, sam_decoder_state(load_state_dict(path), path), path)
        self.pe.positional_embedding.requires_grad_(False)  # a fixed buffer in official SAM
        # parts that never reach the single-mask output: the IoU head and the hypernetwork MLPs
        # of the three multimask tokens (the tokens themselves do, through attention)
        for module in [self.mask_decoder.iou_prediction_head, *self.mask_decoder.output_hypernetworks_mlps[1:]]:
            module.requires_grad_(False)
        self.classifier = nn.Identity()

    def image_positional_embedding(self, h: int, w: int) -> torch.Tensor:
        """Dense positional encoding ``[1, C, h, w]`` of an ``h × w`` grid (cell centres in [0, 1])."""
        ref = self.pe.positional_embedding
        y = (torch.arange(h, device=ref.device, dtype=ref.dtype) + 0.5) / h
        x = (torch.arange(w, device=ref.device, dtype=ref.dtype) + 0.5) / w
        grid = torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1)  # [h, w, 2] as (x, y)
        return self.pe(grid).permute(2, 0, 1).unsqueeze(0)

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Single-mask logits at 4× the feature resolution ``[B, 1, 4h, 4w]``."""
        if len(features) != 1:
            raise ValueError(f"the SAM decoder takes one feature map, got {len(features)}")
        image = features[0]
        b, c, h, w = image.shape
        sparse = image.new_zeros(b, 1, 0, c)  # no prompts
        dense = self.no_mask_embed.weight.reshape(1, c, 1, 1).expand(b, c, h, w)
        pos = self.image_positional_embedding(h, w).expand(b, -1, -1, -1)
        masks, _ = self.mask_decoder(
            image_embeddings=image,
            image_positional_embeddings=pos,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        return masks[:, 0]  # [B, 1, 4h, 4w]
