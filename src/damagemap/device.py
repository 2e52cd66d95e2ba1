"""Where models run and in what precision: ``--device`` and ``--precision`` for every command.

``auto`` is the first CUDA GPU when torch sees one, else the CPU (Apple's ``mps`` only when
asked for: its operator coverage is partial). Models and batches move to the device; the feature
cache always stores its tensors on the CPU (and in the training dtype), so a cache filled on a
GPU serves a CPU run and the other way round. Precision: ``fp32`` (the default, reproduces a
model exactly), ``bf16`` (autocast; on CPUs with AVX-512 BF16 / AMX and on recent GPUs) or
``fp16`` (autocast, GPU only; training then uses a gradient scaler).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Literal

import torch

from damagemap.errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
DEVICE_HELP = "auto (CUDA if available, else CPU), cpu, cuda, cuda:N or mps."


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch device of ``spec``; a device torch cannot use here is a clear error.

    Raises:
        ConfigError: an unknown spec, CUDA/MPS asked for but not available, or a GPU index
            beyond the ones present.
    """
    if isinstance(spec, torch.device):
        return spec
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ConfigError(f"--device {spec!r}: expected {DEVICE_HELP}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {spec}: torch sees no CUDA GPU here (torch {torch.__version__}); "
                "use --device cpu, or install a CUDA build of torch"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {spec}: there are {torch.cuda.device_count()} CUDA device(s) (0-based)")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"--device {spec}: Apple's MPS backend is not available here")
        return device
    raise ConfigError(f"--device {spec!r}: expected {DEVICE_HELP}")


def check_precision(precision: str, device: torch.device) -> Precision:
    """``precision`` if it can run on ``device`` (fp16 autocast needs a GPU)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("--precision fp16 needs a GPU (--device cuda); on a CPU use bf16")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        logging.getLogger(__name__).warning(
            "--precision bf16: this CPU has no native bf16 (AVX-512 BF16 or AMX), so bf16 is emulated "
            "and usually much slower than fp32; fp32 is the better choice here"
        )
    return precision  # type: ignore[return-value]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX tiles), as torch detects it."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


@contextlib.contextmanager
def autocast(device: torch.device, precision: str = "fp32") -> Iterator[None]:
    """Mixed precision for ``device`` (a no-op for fp32)."""
    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device.type, dtype=dtype):
        yield


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a module with neither)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")
