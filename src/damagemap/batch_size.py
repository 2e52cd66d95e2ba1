"""How many model inputs go into one inference call when the user gives no ``--batch``.

Torch-free: the CLI and the mapper read it before (or without) importing torch.
"""

from __future__ import annotations


def default_batch(precision: str = "fp32") -> int:
    """Model inputs per call by default: 4 in fp32, 8 in bf16/fp16.

    Half-size activations make 8 bf16 inputs take about the memory of 4 fp32 ones; on a 2-core
    CPU bf16 runs faster at 8 while fp32 does not (``benchmarks/mapping_scale.py`` maps both at
    these defaults).
    """
    return 4 if precision == "fp32" else 8
