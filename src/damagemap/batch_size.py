"""How many model inputs go into one inference call when the user gives no ``--batch``.

Torch-free: the CLI and the mapper read it before (or without) importing torch.
"""

from __future__ import annotations


def default_batch(precision: str = "fp32") -> int:
    """Model inputs per call by default: 4 in fp32, 8 in bf16/fp16.

    Half-size activations make 8 bf16 inputs take about the memory of 4 fp32 ones, and bf16 maps
    faster at 8 on a 2-core CPU (``benchmarks/mapping_scale.py`` times both precisions at these
    defaults); fp32 mapped no faster at 8 than at 4, which is why 4 replaced 8.
    """
    return 4 if precision == "fp32" else 8


def resolve_batch(batch: int | None, precision: str) -> int:
    """``--batch`` when given, else the default for ``precision``."""
    return default_batch(precision) if batch is None else batch
