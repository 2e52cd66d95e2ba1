"""Hand back the GPU libraries' resident pages when a process runs on the CPU only (Linux).

A CUDA build of torch loads cuBLAS(Lt), nvrtc, nvJitLink, cuDNN and friends when it is
imported, even on a machine without a GPU, and their initialisation leaves ~140 MB of those
files' pages in the process's resident set (torch 2.14.1+cu130, the CLI imported and a model
loaded: 580 → 445 MB RSS once they are dropped). A CPU run never touches them again, so the
mapper drops them with ``madvise(MADV_DONTNEED)``, only for read-only mappings without a page
this process wrote (smaps: no private dirty or anonymous page). Dropping such a page loses nothing: it is an
unmodified page of the file, read back from the page cache if it is ever used. Mappings that
hold written pages (relocations) are left alone, as is everything once CUDA has been
initialised in the process, and everything off Linux.
"""

from __future__ import annotations

import ctypes
import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path

from damagemap.heap import linux_libc

MADV_DONTNEED = 4
"""``<sys/mman.h>``: drop these pages from this process (a file mapping reads them back if used)."""

GPU_LIBRARY = re.compile(
    r"/nvidia/|/lib(?:torch_cuda|c10_cuda|cudart|cudnn|cublas|cusparse|cufft|curand|cusolver|nvrtc|nvJitLink"
    r"|cupti|nccl|nvshmem|cufile|caffe2_nvrtc)[^/]*\.so"
)
"""Files of GPU runtime libraries (pip's ``nvidia-*`` wheels and torch's own CUDA libraries)."""


@functools.lru_cache(maxsize=1)
def _madvise() -> Callable[[int, int, int], int] | None:
    """Libc's ``madvise``, or None off Linux."""
    advise = getattr(linux_libc(), "madvise", None)
    if advise is None:
        return None
    advise.argtypes, advise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    return advise


def _cuda_in_use() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def clean_read_only_mappings(pattern: re.Pattern[str], smaps: str) -> list[tuple[int, int]]:
    """Read-only mappings ``(start, end)`` of files matching ``pattern`` that hold no written page.

    ``smaps`` is the text of ``/proc/<pid>/smaps``; a mapping with a private dirty or anonymous
    page (one this process wrote, e.g. relocations) is left out.
    """
    found: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for line in smaps.splitlines():
        fields = line.split(maxsplit=5)
        if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            span, perms = fields[0], fields[1]
            path = fields[5] if len(fields) == 6 else ""
            start, end = (int(x, 16) for x in span.split("-"))
            current = (start, end) if "w" not in perms and pattern.search(path) else None
            if current is not None:
                found.append(current)
        elif current is not None and fields[0] in ("Private_Dirty:", "Anonymous:") and int(fields[1]) > 0:
            found.remove(current)
            current = None
    return found


def drop_clean_pages(pattern: re.Pattern[str], smaps: Path = Path("/proc/self/smaps")) -> int:
    """Drop this process's resident pages of clean read-only mappings of files matching ``pattern``.

    Returns the bytes of the mappings advised (0 where ``madvise`` or ``smaps`` is unavailable).
    """
    advise = _madvise()
    if advise is None:
        return 0
    try:
        text = smaps.read_text()
    except OSError:
        return 0
    advised = 0
    for start, end in clean_read_only_mappings(pattern, text):
        if advise(start, end - start, MADV_DONTNEED) == 0:
            advised += end - start
    return advised


def release_gpu_library_pages() -> int:
    """Drop the GPU libraries' clean resident pages unless CUDA is in use here; returns the bytes advised."""
    if _cuda_in_use():
        return 0
    return drop_clean_pages(GPU_LIBRARY)
