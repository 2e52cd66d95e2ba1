"""Names from user input that become file names, and paths read relative to a data root.

A recipe name, a tile name or a photo stem ends up in an output path: it must be one plain
file-name component (no separator, no ``..``, not absolute). A path read from a label file
(COCO ``file_name``) must stay inside its data root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePath

from damagemap.errors import InputError

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=@-]{0,127}")


def is_safe_name(name: str) -> bool:
    """Whether ``name`` is a plain file-name component: letters, digits, ``. _ + = @ -``, not starting with a dot."""
    return isinstance(name, str) and _SAFE.fullmatch(name) is not None


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is a safe file-name component, else raise ``ValueError`` naming ``what``."""
    if not is_safe_name(name):
        raise ValueError(
            f"{what} {name!r} is not a plain name (letters, digits and . _ + = @ -, at most 128 characters, "
            "not starting with a dot): it becomes a file name"
        )
    return name


def is_safe_path(relative: str | os.PathLike[str]) -> bool:
    """Whether ``relative`` is a relative path that never climbs above its start (no ``..``, not absolute)."""
    p = PurePath(relative)
    return not p.is_absolute() and not p.drive and ".." not in p.parts


def inside(root: str | os.PathLike[str], relative: str | os.PathLike[str], source: str | os.PathLike[str]) -> Path:
    """``root / relative``, refused unless it stays inside ``root`` (no absolute path, no ``..`` escape).

    Args:
        source: the file that named ``relative`` (for the error message).

    Raises:
        InputError: naming ``source`` and the offending path.
    """
    base = Path(root).resolve()
    target = (base / relative).resolve()
    if Path(relative).is_absolute() or not target.is_relative_to(base):
        raise InputError(source, f"path {os.fspath(relative)!r} points outside the data folder {base}")
    return base / relative
