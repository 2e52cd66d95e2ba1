"""Trainable encoder-side modules ("adapters"): attach, count, save and re-apply them.

An adapter kind is a function ``apply(encoder, options)`` that adds freshly initialised,
trainable (``requires_grad=True``) modules or parameters to a frozen encoder, in place. ATL
(:mod:`damagemap.adapters.atl`) is one kind; others (e.g. extra-band patch-embedding weights)
register theirs with :func:`register_adapter_kind`. Every attached kind is recorded on the
encoder (``encoder.adapter_specs``), so a trained model saves

* ``adapter.safetensors`` — the encoder's trainable tensors by name, and
* ``adapter_config`` — ``{"method": "modules", "modules": [{"kind": …, **options}, …],
  "keys": […], "base_fingerprint": …, "adapted_fingerprint": …}``,

and :func:`apply_saved_adapter` rebuilds the same modules on a rebuilt *base* encoder and loads
the tensors. (LoRA few-shot adapters keep their own ``method: lora`` format.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from damagemap.encoders.base import Encoder
from damagemap.errors import CheckpointError, ConfigError

METHOD = "modules"
AdapterApply = Callable[[Encoder, dict], None]
_KINDS: dict[str, AdapterApply] = {}


def register_adapter_kind(kind: str, apply: AdapterApply) -> None:
    """Register ``apply(encoder, options)`` under ``kind`` (names are unique)."""
    if kind in _KINDS and _KINDS[kind] is not apply:
        raise ValueError(f"adapter kind {kind!r} registered twice")
    _KINDS[kind] = apply


def _ensure_loaded() -> None:
    from damagemap.adapters import atl_apply  # noqa: F401  (registers "atl")
    from damagemap.encoders import band_adapt  # noqa: F401  (registers "band_adapter")


def attach_adapter(encoder: Encoder, kind: str, options: dict) -> Encoder:
    """Add adapter ``kind`` to ``encoder`` (in place, trainable) and record it; returns encoder."""
    _ensure_loaded()
    if kind not in _KINDS:
        raise ConfigError(f"unknown adapter kind {kind!r}; known: {', '.join(sorted(_KINDS))}")
    specs = adapter_specs(encoder)
    if not specs:
        encoder.base_fingerprint = encoder.fingerprint  # the weights the manifest is checked against
    _KINDS[kind](encoder, dict(options))
    encoder.adapter_specs = [*specs, {"kind": kind, **options}]
    encoder.invalidate_fingerprint()
    return encoder


def adapter_specs(encoder: Encoder) -> list[dict]:
    """The adapter kinds attached to ``encoder`` (empty for a plain encoder)."""
    return list(getattr(encoder, "adapter_specs", []) or [])


def has_trainable_parameters(module: nn.Module) -> bool:
    """Whether any parameter of ``module`` has ``requires_grad=True``."""
    return any(p.requires_grad for p in module.parameters())


def trainable_state(encoder: Encoder) -> dict[str, torch.Tensor]:
    """Detached copies of the encoder's trainable parameters, by name."""
    return {n: p.detach().cpu().contiguous().clone() for n, p in encoder.named_parameters() if p.requires_grad}


def parameter_counts(encoder: nn.Module, head: nn.Module) -> dict:
    """Trainable and total parameter counts of encoder + head, and the trainable share."""
    def count(module: nn.Module, trainable: bool | None = None) -> int:
        return int(sum(p.numel() for p in module.parameters() if trainable is None or p.requires_grad == trainable))

    enc_t, head_t = count(encoder, True), count(head, True)
    total = count(encoder) + count(head)
    return {"trainable": enc_t + head_t, "total": total, "share": (enc_t + head_t) / max(total, 1),
            "encoder_trainable": enc_t, "encoder_total": count(encoder),
            "head_trainable": head_t, "head_total": count(head)}


def adapter_record(encoder: Encoder, tensors: dict[str, torch.Tensor]) -> dict:
    """The ``adapter_config`` for ``tensors`` (trainable encoder tensors) of ``encoder``."""
    encoder.invalidate_fingerprint()
    return {"method": METHOD, "modules": adapter_specs(encoder), "keys": sorted(tensors),
            "base_fingerprint": getattr(encoder, "base_fingerprint", None) or encoder.fingerprint,
            "adapted_fingerprint": encoder.fingerprint}


def apply_saved_adapter(encoder: Encoder, tensors: dict[str, torch.Tensor], config: dict) -> Encoder:
    """Re-create the recorded adapter modules on a *base* encoder (in place), load ``tensors``.

    Raises:
        CheckpointError: unknown kind, tensors that do not fit the re-created modules, or an
            adapted fingerprint different from the recorded one.
    """
    _ensure_loaded()
    for spec in config.get("modules", []):
        options = {k: v for k, v in spec.items() if k != "kind"}
        if spec.get("kind") not in _KINDS:
            raise CheckpointError(None, f"adapter kind {spec.get('kind')!r} is not known to this damagemap")
        attach_adapter(encoder, spec["kind"], options)
    own = dict(encoder.named_parameters())
    unexpected = sorted(set(tensors) - set(own))
    missing = sorted(set(config.get("keys", tensors)) - set(tensors))
    wrong = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in tensors.items()
             if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if unexpected or missing or wrong:
        raise CheckpointError(None, f"adapter tensors do not fit encoder {encoder.name}"
                              + (f" (shapes: {'; '.join(wrong[:5])})" if wrong else ""), missing, unexpected)
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v)
    encoder.freeze()
    encoder.invalidate_fingerprint()
    expected = config.get("adapted_fingerprint")
    if expected is not None and encoder.fingerprint != expected:
        raise CheckpointError(None, f"adapted encoder fingerprint {encoder.fingerprint} differs from the "
                              f"recorded {expected}")
    return encoder
