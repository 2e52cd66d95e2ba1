"""Shared helpers for the benchmark scripts (timing, peak matmul, tables)."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from damagemap.recipe import Recipe
from damagemap.types import Sample

SHARED_DATA = Path(os.environ.get("DAMAGEMAP_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
"""Real data from outside the project: ``$DAMAGEMAP_SHARED_DATA``, else ``../shared/data`` beside the repository."""


def shared(*parts: str) -> Path:
    """A folder of the shared real data, or exit with a clear message when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        raise SystemExit(f"{path}: real data not found (set DAMAGEMAP_SHARED_DATA to the folder holding it)")
    return path


def xbd_samples(recipe: Recipe, pre: bool = False) -> list[Sample]:
    """Every xBD tile of the shared data (``xbd/`` and ``xbd_events/``: 9 events) in the recipe's xBD settings."""
    from damagemap.data.loading import load_samples

    samples: list[Sample] = []
    for root in ("xbd", "xbd_events"):
        samples += load_samples(shared(root), recipe.data, len(recipe.classes), pre=pre)
    return samples


def timeit(fn: Callable[[], object], repeat: int = 3, warmup: int = 1) -> float:
    """Best-of-``repeat`` wall seconds of ``fn()`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_peak_gflops(n: int = 2048, dtype: torch.dtype = torch.float32) -> float:
    """Achieved GFLOP/s of a square fp32 matmul: this machine's practical compute ceiling."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / timeit(lambda: a @ b, repeat=5) / 1e9


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call, counted by torch's FlopCounterMode (matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: ``VmHWM`` of its own address space on Linux.

    Not ``getrusage().ru_maxrss``: Linux carries the parent's peak into a child started with
    vfork + exec (as ``subprocess`` does), so a child of a process that trained a model first
    would report the parent's peak as its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cell(v: object) -> str:
    """Three significant digits for floats, but never an exponent for 1000 and up (1024, not 1.02e+03)."""
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return str(v)


def print_table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    """Print a rich table (also readable when piped)."""
    cells = [[_cell(v) for v in row] for row in rows]
    table = Table(*columns, title=title)
    # The first column names the row (an encoder, a step): never cut it short; headers wrap instead.
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max([len(columns[0]), *(len(r[0]) for r in cells)])
    for row in cells:
        table.add_row(*row)
    Console(width=140).print(table)


def machine_header() -> str:
    """One line naming the machine a table was measured on: cores, CPU flags, torch, threads, load."""
    import platform

    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            info = fh.read()
        model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
        have = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in have)
    except OSError:
        model = platform.processor()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"machine: {os.cpu_count()} cores, {model or platform.machine()} [{flags or 'no AVX2/AVX-512'}], "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {load:.2f}"
    )
