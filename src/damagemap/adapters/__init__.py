"""Trainable encoder-side modules: ATL (TransLandSeg) and the generic adapter registry."""

from damagemap.adapters.registry import (
    adapter_record,
    adapter_specs,
    apply_saved_adapter,
    attach_adapter,
    has_trainable_parameters,
    parameter_counts,
    register_adapter_kind,
    trainable_state,
)

__all__ = [
    "adapter_record",
    "adapter_specs",
    "apply_saved_adapter",
    "attach_adapter",
    "has_trainable_parameters",
    "parameter_counts",
    "register_adapter_kind",
    "trainable_state",
]
