"""Dropping the clean pages of GPU libraries a CPU-only process does not use."""

from __future__ import annotations

import mmap
import os
import re
import sys
from pathlib import Path

import pytest

from damagemap import gpu_pages

SMAPS = """\
7f0000000000-7f0000004000 r-xp 00000000 fd:00 11 /venv/nvidia/cu13/lib/libcublasLt.so.13
Rss:                  16 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
7f0000004000-7f0000006000 r--p 00004000 fd:00 11 /venv/nvidia/cu13/lib/libcublasLt.so.13
Rss:                   8 kB
Private_Dirty:         8 kB
Anonymous:             8 kB
7f0000006000-7f0000007000 rw-p 00006000 fd:00 11 /venv/nvidia/cu13/lib/libcublasLt.so.13
Private_Dirty:         0 kB
7f0000008000-7f000000a000 r-xp 00000000 fd:00 12 /venv/torch/lib/libtorch_cpu.so
Private_Dirty:         0 kB
7f000000a000-7f000000c000 r--p 00000000 fd:00 13 /venv/torch/lib/libtorch_cuda.so
Private_Dirty:         0 kB
Anonymous:             0 kB
7f000000c000-7f000000d000 rw-p 00000000 00:00 0
Private_Dirty:         4 kB
"""


def test_only_unwritten_read_only_mappings_of_gpu_libraries_are_chosen():
    found = gpu_pages.clean_read_only_mappings(gpu_pages.GPU_LIBRARY, SMAPS)
    assert found == [(0x7F0000000000, 0x7F0000004000), (0x7F000000A000, 0x7F000000C000)]


def _resident_kb(path: Path) -> int:
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if fields and "-" in fields[0] and len(fields) >= 5:
            inside = len(fields) == 6 and fields[5] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc/self/smaps are Linux's")
def test_dropped_pages_leave_the_resident_set_and_read_back_unchanged(tmp_path):
    lib = tmp_path / "libcublasFake.so.1"
    data = bytes(range(256)) * 4096 * 4  # 4 MiB
    with open(lib, "wb") as out:
        out.write(data)
        os.fsync(out.fileno())  # written back: page-cache pages still dirty would count as Private_Dirty
    with open(lib, "rb") as f:
        view = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    try:
        assert view[:] == data  # every page touched
        assert _resident_kb(lib) >= 4096
        advised = gpu_pages.drop_clean_pages(re.compile(re.escape(str(lib))))
        assert advised == len(data)
        assert _resident_kb(lib) == 0
        assert view[:] == data
    finally:
        view.close()


def test_nothing_is_dropped_once_cuda_is_in_use(monkeypatch):
    monkeypatch.setattr(gpu_pages, "_cuda_in_use", lambda: True)
    monkeypatch.setattr(gpu_pages, "drop_clean_pages", lambda *a: pytest.fail("must not drop pages"))
    assert gpu_pages.release_gpu_library_pages() == 0


def test_no_op_off_linux(monkeypatch):
    gpu_pages._madvise.cache_clear()
    monkeypatch.setattr(gpu_pages.sys, "platform", "darwin")
    try:
        assert gpu_pages.drop_clean_pages(gpu_pages.GPU_LIBRARY) == 0
    finally:
        monkeypatch.undo()
        gpu_pages._madvise.cache_clear()
