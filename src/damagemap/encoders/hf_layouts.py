"""Hugging Face ``transformers`` key layouts → the official (torch.hub) DINOv2 / DINOv3 layouts.

timm's ``checkpoint_filter_fn`` functions convert the *official* layouts to timm, so a Hugging
Face ``model.safetensors`` is first renamed to the official layout here and then goes through
the same timm filter as a torch.hub ``.pth``. Both the transformers 4.x names
(``attention.attention.query``, ``attention.output.dense``) and the 5.x names
(``attention.q_proj``, ``attention.o_proj``) are understood.
"""

from __future__ import annotations

import re

import torch

from damagemap.encoders.checkpoints import StateDict

_PREFIXES = ("dinov2.", "dinov3.", "backbone.", "model.")


def _strip(state: StateDict, marker: str) -> StateDict:
    """Drop a wrapper prefix (``dinov2.``, ``model.`` …) in front of ``embeddings.``."""
    for prefix in _PREFIXES:
        if prefix + marker in state:
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def is_hf_dinov2(state: StateDict) -> bool:
    """Whether ``state`` uses the Hugging Face ``Dinov2Model`` key names."""
    key = "embeddings.patch_embeddings.projection.weight"
    return any(k == key or k.endswith("." + key) for k in state)


def is_hf_dinov3(state: StateDict) -> bool:
    """Whether ``state`` uses the Hugging Face ``DINOv3ViTModel`` key names."""
    key = "embeddings.patch_embeddings.weight"
    return any(k == key or k.endswith("." + key) for k in state)


def _fuse_qkv(parts: dict[str, dict[str, torch.Tensor]], out: StateDict, k_bias_zero: bool) -> None:
    """Concatenate per-block q/k/v weights and biases into ``blocks.N.attn.qkv.*``."""
    for block, p in parts.items():
        out[f"blocks.{block}.attn.qkv.weight"] = torch.cat([p["qw"], p["kw"], p["vw"]], 0)
        if "qb" in p or "vb" in p:
            zeros = torch.zeros_like(p["qw"][:, 0])
            kb = p.get("kb", zeros)
            out[f"blocks.{block}.attn.qkv.bias"] = torch.cat(
                [p.get("qb", zeros), zeros if k_bias_zero else kb, p.get("vb", zeros)], 0
            )
            if k_bias_zero:  # DINOv3 masks the k bias; its official checkpoints carry the mask
                mask = torch.ones_like(out[f"blocks.{block}.attn.qkv.bias"])
                mask[zeros.numel() : 2 * zeros.numel()] = 0
                out[f"blocks.{block}.attn.qkv.bias_mask"] = mask


_QKV = {"query": "q", "key": "k", "value": "v", "q_proj": "q", "k_proj": "k", "v_proj": "v"}
_ATTN = re.compile(
    r"^(?:encoder\.)?(?:model\.)?layer\.(\d+)\.attention\.(?:attention\.)?"
    r"(query|key|value|q_proj|k_proj|v_proj)\.(weight|bias)$"
)
_BLOCK = re.compile(r"^(?:encoder\.)?(?:model\.)?layer\.(\d+)\.(.+)$")
_BLOCK_NAMES = {
    "attention.output.dense.": "attn.proj.",
    "attention.o_proj.": "attn.proj.",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.up_proj.": "mlp.fc1.",
    "mlp.down_proj.": "mlp.fc2.",
    "mlp.weights_in.": "mlp.w12.",
    "mlp.weights_out.": "mlp.w3.",
    "norm1.": "norm1.",
    "norm2.": "norm2.",
    "mlp.fc1.": "mlp.fc1.",
    "mlp.fc2.": "mlp.fc2.",
}
_TOP_NAMES = {
    "embeddings.cls_token": "cls_token",
    "embeddings.mask_token": "mask_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "embeddings.patch_embeddings.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
    "norm.weight": "norm.weight",
    "norm.bias": "norm.bias",
}


def _convert(state: StateDict, registers: str, k_bias_zero: bool) -> tuple[StateDict, list[str]]:
    out: StateDict = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if m := _ATTN.match(key):
            block, which, kind = m.groups()
            qkv.setdefault(block, {})[_QKV[which] + kind[0]] = value
        elif key == "embeddings.register_tokens":
            out[registers] = value
        elif key in _TOP_NAMES:
            out[_TOP_NAMES[key]] = value
        elif (m := _BLOCK.match(key)) and (name := next((n for n in _BLOCK_NAMES if m.group(2).startswith(n)), None)):
            out[f"blocks.{m.group(1)}." + _BLOCK_NAMES[name] + m.group(2)[len(name) :]] = value
        else:
            unknown.append(key)
    _fuse_qkv(qkv, out, k_bias_zero)
    return out, unknown


def hf_dinov2_to_official(state: StateDict) -> tuple[StateDict, list[str]]:
    """Rename a HF ``Dinov2Model`` / ``Dinov2WithRegistersModel`` state dict to the official layout.

    Returns the converted dict and the HF keys that were not recognised.
    """
    state = _strip(state, "embeddings.patch_embeddings.projection.weight")
    out, unknown = _convert(state, "register_tokens", k_bias_zero=False)
    if "mask_token" in out:
        out["mask_token"] = out["mask_token"].reshape(1, -1)
    return out, unknown


def hf_dinov3_to_official(state: StateDict) -> tuple[StateDict, list[str]]:
    """Rename a HF ``DINOv3ViTModel`` state dict to the official (facebookresearch/dinov3) layout.

    The official layout stores one fused ``qkv`` with a masked (always zero) k bias; HF has no k
    bias. Returns the converted dict and the HF keys that were not recognised.
    """
    state = _strip(state, "embeddings.patch_embeddings.weight")
    out, unknown = _convert(state, "storage_tokens", k_bias_zero=True)
    out.setdefault("storage_tokens", torch.zeros(1, 0, out["cls_token"].shape[-1]))
    if "mask_token" in out:
        out["mask_token"] = out["mask_token"].reshape(1, -1)
    return out, unknown
