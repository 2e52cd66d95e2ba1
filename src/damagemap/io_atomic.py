"""The one home of atomic writes: a file or directory appears under its final name only when complete.

Every writer builds its output under a hidden temporary name in the same folder (so the final
``os.replace`` is a rename on one filesystem) and renames it when done; on any failure the
temporary is removed. Files and folders get the permissions the process umask gives any new
file (``tempfile`` and safetensors create owner-only ones, which would hide a shared model).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


def umask() -> int:
    """The process umask (read without changing it for longer than the call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the mode a new file (0666) or folder (0777) gets under the process umask."""
    p = Path(path)
    base = 0o777 if p.is_dir() else 0o666
    p.chmod(base & ~umask())


def temp_name(path: str | os.PathLike[str]) -> Path:
    """A unique hidden sibling of ``path`` to build it under: ``.STEM.<random>.tmp.SUFFIX``.

    The suffix is kept: GDAL, PIL and matplotlib pick the format from it.
    """
    p = Path(path)
    return p.with_name(f".{p.stem}.{uuid.uuid4().hex[:8]}.tmp{p.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; rename it to ``path`` if the block succeeds.

    The writer inside the block creates the temporary file itself (any library may write it).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    try:
        yield tmp
        apply_umask(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def publish(pairs: Iterable[tuple[Path, Path]]) -> None:
    """Move finished temporary files to their final names (each rename is atomic)."""
    for tmp, final in pairs:
        apply_umask(tmp)
        os.replace(tmp, final)


def write_dir_atomic(out_dir: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Create the folder ``out_dir`` atomically: ``write(tmp)`` fills a hidden sibling, then it replaces ``out_dir``.

    On any failure (also a kill) nothing appears under ``out_dir``; a kill leaves at most the
    hidden sibling, which the next successful write does not reuse.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        write(tmp)
        for child in tmp.rglob("*"):
            apply_umask(child)
        apply_umask(tmp)
        if out.exists():
            old = temp_name(out)
            os.replace(out, old)  # move the old folder aside first: the swap is two renames
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def check_output_folder(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Refuse an output folder that cannot be written, before any work starts.

    ``path`` may not exist yet (its nearest existing parent must then be a writable folder); if it
    exists it must be a writable folder.

    Raises:
        OutputError: naming ``option`` and the path.
    """
    from damagemap.errors import OutputError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(p, f"{option} must be a folder, but this is an existing file")
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(p, f"{option}: cannot create a folder under {probe} (not a folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(p, f"{option}: {probe} is not writable")
    return p
