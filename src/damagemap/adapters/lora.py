"""The ``lora`` adapter kind: low-rank adapters (``peft``) on a ViT encoder's block Linear layers.

Smart Transfer's few-shot protocol (docs/methods.md §1) adapts the frozen ViT with LoRA
(r = 8, α = 16 on ``qkv`` / ``proj`` / ``fc1`` / ``fc2``); the training procedure is
:func:`damagemap.training.fewshot.adapt_encoder_lora`, this module only injects the adapters.

* Targets are the ``nn.Linear`` modules *inside* ``blocks.<i>.`` whose last name part is one of
  ``target_modules`` — the attention ``qkv`` and output ``proj`` and the MLP ``fc1`` / ``fc2``
  in timm's DINOv3 (Eva), DINOv2 and SAM ViTs: 4 per block. The patch-embedding ``proj`` (a
  conv) and SAM's neck are never adapted.
* timm's Eva with a qkv bias (DINOv3 ``*_qkvb``) computes ``F.linear(x, qkv.weight, bias)``,
  which would bypass a LoRA-wrapped ``qkv``; those attention modules are switched to
  ``qkv_bias_separate`` (``qkv(x) + bias``, the same function) so the adapter is used.
* LoRA B starts at zero (peft's default), so a freshly injected encoder computes exactly the
  base features; the base weights never change, so a saved model still names the base encoder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError

ADAPTER_NAME = "default"
_BLOCK = re.compile(r"(?:^|\.)blocks\.\d+\.")


def lora_target_modules(encoder: Encoder, target_modules: Sequence[str]) -> list[str]:
    """Names (relative to ``encoder``) of the Linear layers LoRA adapts.

    Those inside ``blocks.<i>.`` ending in one of ``target_modules``; none for non-transformer encoders.
    """
    targets = set(target_modules)
    return [
        name
        for name, module in encoder.named_modules()
        if isinstance(module, nn.Linear) and _BLOCK.search(name) and name.rsplit(".", 1)[-1] in targets
    ]


def lora_supported(encoder: Encoder, target_modules: Sequence[str]) -> bool:
    """Whether ``encoder`` has layers to adapt (a ViT) under ``target_modules``."""
    return bool(lora_target_modules(encoder, target_modules))


def apply_lora(encoder: Encoder, options: dict) -> None:
    """Adapter kind ``lora``: wrap the target layers (in place) with zero-initialised LoRA adapters.

    ``options``: ``r``, ``alpha`` and ``target_modules``.

    Raises:
        ConfigError: the encoder has no such layers (not a ViT).
    """
    from peft import LoraConfig, inject_adapter_in_model  # heavy import; only when adapting

    target_modules = list(options["target_modules"])
    names = lora_target_modules(encoder, target_modules)
    if not names:
        raise ConfigError(
            f"LoRA few-shot adaptation needs a ViT encoder; {encoder.name} has no {'/'.join(target_modules)} layers"
        )
    for name in names:  # Eva with qkv bias: make the fused-bias path go through the wrapped qkv
        parent = encoder.get_submodule(name.rsplit(".", 1)[0])
        if getattr(parent, "q_bias", None) is not None and hasattr(parent, "qkv_bias_separate"):
            # timm Eva/BEiT attention flag; torch types Module.__setattr__ values as Tensor | Module
            parent.qkv_bias_separate = True  # type: ignore[assignment]
    config = LoraConfig(
        r=int(options["r"]),
        lora_alpha=float(options["alpha"]),  # type: ignore[arg-type]  # peft annotates int; scaling = alpha / r
        lora_dropout=0.0,
        bias="none",
        target_modules="|".join(re.escape(n) for n in names),  # exact names (full match)
    )
    inject_adapter_in_model(config, encoder, adapter_name=ADAPTER_NAME)
