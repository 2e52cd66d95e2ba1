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


def unique_stems(paths: list[Path]) -> list[str]:
    """Output names of ``paths``: each file's stem, with ``-2``, ``-3`` … appended where stems repeat.

    ``a/x.png`` and ``b/x.png`` (or ``p0.png`` and ``p0.jpg``) would otherwise write the same
    output file; the renaming is logged once, naming the inputs concerned.
    """
    import logging

    seen: dict[str, int] = {}
    names, renamed = [], []
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        name = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
        while name in names:  # a real file already called x-2
            seen[stem] += 1
            name = f"{stem}-{seen[stem]}"
        if name != stem:
            renamed.append(f"{path} → {name}")
        names.append(name)
    if renamed:
        logging.getLogger(__name__).warning(
            "inputs share a file name; outputs renamed to stay apart: %s", "; ".join(renamed)
        )
    return names
