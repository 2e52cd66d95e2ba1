"""Trainable encoder-side modules: ATL (TransLandSeg), extra-band stem, LoRA — one registry."""

from damagemap.adapters.registry import (
    ADAPTERS,
    adapter_record,
    adapter_specs,
    adapter_tensors,
    apply_saved_adapter,
    attach_adapter,
    has_trainable_parameters,
    parameter_counts,
    trainable_state,
)

__all__ = [
    "ADAPTERS",
    "adapter_record",
    "adapter_specs",
    "adapter_tensors",
    "apply_saved_adapter",
    "attach_adapter",
    "has_trainable_parameters",
    "parameter_counts",
    "trainable_state",
]
