"""Trainable encoder-side modules ("adapters"): one registry, attach, count, save and re-apply.

An adapter kind is a function ``apply(encoder, options)`` that adds freshly initialised,
trainable (``requires_grad=True``) modules or parameters to a frozen encoder, in place, or makes
existing parameters trainable; it returns ``None`` or the names of the *existing* parameters it
makes its own (``finetune``: all of them):

========================  =====================================================  ==========================
kind                      what it adds                                           module
========================  =====================================================  ==========================
``atl``                   TransLandSeg's ATL prompts / in-block adapters         :mod:`~damagemap.adapters.atl`
``band_adapter``          a trainable conv for the non-RGB bands of the stem     :mod:`~damagemap.adapters.band`
``finetune``              nothing: every encoder parameter becomes trainable     :mod:`~damagemap.adapters.finetune`
``lora``                  LoRA on the ViT blocks' Linear layers (few-shot)       :mod:`~damagemap.adapters.lora`
========================  =====================================================  ==========================

Every attached kind is recorded on the encoder (``encoder.adapter_specs``) together with the
names of the parameters it added or claimed (``encoder.adapter_keys``; parameters are followed
by identity, so a later kind that moves a recorded one — LoRA wrapping a fine-tuned layer as
``….base_layer`` — updates its name), so a trained model saves

* ``adapter.safetensors`` — those parameters by name (:func:`adapter_tensors`), and
* ``adapter_config`` — ``{"method": "modules", "modules": [{"kind": …, **options}, …],
  "keys": […], "base_fingerprint": …, "adapted_fingerprint": …}`` (:func:`adapter_record`),

and :func:`apply_saved_adapter` re-creates the same kinds, in order, on a rebuilt *base*
encoder and loads the tensors. Kinds stack (e.g. ATL, then LoRA for few-shot adaptation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from damagemap.adapters.atl import apply_atl
from damagemap.adapters.band import apply_band_adapter
from damagemap.adapters.finetune import apply_finetune
from damagemap.adapters.lora import apply_lora
from damagemap.encoders.base import Encoder
from damagemap.errors import CheckpointError, ConfigError

AdapterApply = Callable[[Encoder, dict], Iterable[str] | None]
"""``apply(encoder, options)``; returns ``None`` or the names of existing parameters it claims."""
METHOD = "modules"
"""Format marker of ``adapter_config`` (models saved by damagemap 0.1 with ATL or band adapters
carry it too, so they still load)."""

ADAPTERS: dict[str, AdapterApply] = {
    "atl": apply_atl,
    "band_adapter": apply_band_adapter,
    "finetune": apply_finetune,
    "lora": apply_lora,
}
"""Adapter kinds by the name recorded in a model's ``adapter_config``."""


def adapter_specs(encoder: Encoder) -> list[dict]:
    """The adapter kinds attached to ``encoder``, in order (empty for a plain encoder)."""
    return list(getattr(encoder, "adapter_specs", []) or [])


def attach_adapter(encoder: Encoder, kind: str, options: dict) -> Encoder:
    """Add adapter ``kind`` to ``encoder`` (in place, trainable) and record it; returns ``encoder``."""
    if kind not in ADAPTERS:
        raise ConfigError(f"unknown adapter kind {kind!r}; known: {', '.join(sorted(ADAPTERS))}")
    specs = adapter_specs(encoder)
    if not specs:
        encoder.base_fingerprint = encoder.fingerprint  # the weights the manifest is checked against
    recorded = set(getattr(encoder, "adapter_keys", []))
    before = {id(p): name for name, p in encoder.named_parameters()}
    claimed = set(ADAPTERS[kind](encoder, dict(options)) or ())
    named = dict(encoder.named_parameters())
    if unknown := sorted(claimed - set(named)):
        raise ConfigError(f"adapter {kind!r} claims parameters the encoder does not have: {unknown[:5]}")
    # new parameters, claimed ones, and earlier kinds' ones under their current names; a base
    # weight an adapter only moves (the band stem's RGB conv) is neither new nor recorded
    keys = {name for name, p in named.items() if id(p) not in before or name in claimed or before[id(p)] in recorded}
    encoder.adapter_specs = [*specs, {"kind": kind, **options}]
    encoder.adapter_keys = sorted(keys)
    encoder.invalidate_fingerprint()
    return encoder


def has_trainable_parameters(module: nn.Module) -> bool:
    """Whether any parameter of ``module`` has ``requires_grad=True``."""
    return any(p.requires_grad for p in module.parameters())


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the module's trainable parameters, by name."""
    return {n: p.detach().cpu().contiguous().clone() for n, p in module.named_parameters() if p.requires_grad}


def adapter_tensors(encoder: Encoder) -> dict[str, torch.Tensor]:
    """Detached copies of every parameter the attached adapters added, by name."""
    own = dict(encoder.named_parameters())
    return {k: own[k].detach().cpu().contiguous().clone() for k in getattr(encoder, "adapter_keys", [])}


def parameter_counts(encoder: nn.Module, head: nn.Module) -> dict:
    """Trainable and total parameter counts of encoder + head, and the trainable share."""

    def count(module: nn.Module, trainable: bool | None = None) -> int:
        return int(sum(p.numel() for p in module.parameters() if trainable is None or p.requires_grad == trainable))

    enc_t, head_t = count(encoder, True), count(head, True)
    total = count(encoder) + count(head)
    return {
        "trainable": enc_t + head_t,
        "total": total,
        "share": (enc_t + head_t) / max(total, 1),
        "encoder_trainable": enc_t,
        "encoder_total": count(encoder),
        "head_trainable": head_t,
        "head_total": count(head),
    }


def adapter_record(encoder: Encoder) -> dict:
    """The ``adapter_config`` saved with a model whose encoder carries adapters."""
    encoder.invalidate_fingerprint()
    return {
        "method": METHOD,
        "modules": adapter_specs(encoder),
        "keys": list(getattr(encoder, "adapter_keys", [])),
        "base_fingerprint": getattr(encoder, "base_fingerprint", None) or encoder.fingerprint,
        "adapted_fingerprint": encoder.fingerprint,
    }


def apply_saved_adapter(encoder: Encoder, tensors: dict[str, torch.Tensor], config: dict) -> Encoder:
    """Re-create the recorded adapters on a *base* encoder (in place), load ``tensors``, freeze.

    Raises:
        CheckpointError: an unknown kind, a base encoder other than the one the adapters were
            made for, tensors that do not fit the re-created modules, or an adapted fingerprint
            different from the recorded one.
    """
    base = config.get("base_fingerprint")
    if base is not None and base != encoder.fingerprint:
        raise CheckpointError(
            None, f"the adapter was made for encoder fingerprint {base}; this encoder has {encoder.fingerprint}"
        )
    modules = config.get("modules")
    if config.get("method", METHOD) != METHOD or not isinstance(modules, list):
        raise CheckpointError(
            None,
            f"adapter format {config.get('method')!r} is not readable by this damagemap "
            "(re-run the few-shot adaptation)",
        )
    for spec in modules:
        if spec.get("kind") not in ADAPTERS:
            raise CheckpointError(None, f"adapter kind {spec.get('kind')!r} is not known to this damagemap")
        attach_adapter(encoder, spec["kind"], {k: v for k, v in spec.items() if k != "kind"})
    own = dict(encoder.named_parameters())
    unexpected = sorted(set(tensors) - set(own))
    missing = sorted(set(config.get("keys", tensors)) - set(tensors))
    wrong = [
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in tensors.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if unexpected or missing or wrong:
        raise CheckpointError(
            None,
            f"adapter tensors do not fit the encoder {encoder.name}"
            + (f" (shapes: {'; '.join(wrong[:5])})" if wrong else ""),
            missing,
            unexpected,
        )
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v)
    encoder.freeze()
    encoder.invalidate_fingerprint()
    expected = config.get("adapted_fingerprint")
    if expected is not None and encoder.fingerprint != expected:
        raise CheckpointError(
            None, f"adapted encoder fingerprint {encoder.fingerprint} differs from the recorded {expected}"
        )
    return encoder
