"""Give freed heap memory back to the OS while a long map runs (glibc only; elsewhere a no-op).

When the model runs in the mapper's thread, torch's large short-lived activations share glibc's
main heap with long-lived buffers (blending sums, GDAL's block cache). The freed space between
them is reused but not returned to the OS, so peak RSS crept up with the scene's size, and the
COG conversion at the end allocated on top of it. ``malloc_trim(0)`` releases those free pages.
The next model call faults some of them back in, so during prediction :class:`HeapTrimmer`
trims at most once per interval; the mapper trims once more before the COG conversion.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import time
from collections.abc import Callable


def linux_libc() -> ctypes.CDLL | None:
    """The C library (errno kept for its callers), or None off Linux or when it cannot be loaded."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """Glibc's ``malloc_trim``, or None (not Linux, or a C library without it, e.g. musl)."""
    trim = getattr(linux_libc(), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_heap() -> bool:
    """Return the heap's free pages to the OS; False where that is not available."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class HeapTrimmer:
    """Call :func:`release_free_heap` from :meth:`maybe_trim` at most once per ``interval`` seconds."""

    def __init__(self, interval: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.clock = interval, clock
        self.last = clock()
        self.trims = 0

    def maybe_trim(self) -> None:
        """Trim if ``interval`` seconds have passed since the last trim (or since creation)."""
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self.trims += release_free_heap()
