"""Cheap listings of a dataset folder: which domains it holds and how many samples each gives.

Used before any image is read (e.g. to set scarce events aside as sources before minutes of
loading). Only file names and image headers are read. Formats without a listing return None;
callers then fall back to counting the loaded samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from damagemap.data.io import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from damagemap.recipe import DataConfig

_POST = "_post_disaster"


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image from its header (PIL, else rasterio)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            return h, w
    except Exception:  # noqa: BLE001 - multi-band or float TIFFs: let GDAL read the header
        import rasterio

        with rasterio.open(path) as src:
            return src.height, src.width


def chips_of(shape: tuple[int, int], chip: int | None) -> int:
    """How many samples :func:`damagemap.data.chips.chip_samples` makes of an image of ``shape``."""
    h, w = shape
    if chip is None or (h <= chip and w <= chip):
        return 1
    return len(range(0, h - chip + 1, chip)) * len(range(0, w - chip + 1, chip))


def _xbd(root: Path, chip: int | None) -> list[tuple[str, Path]]:
    from damagemap.data.xbd import _TILE

    out = []
    for label in sorted((root / "labels").glob(f"*{_POST}.json")):
        tile = label.stem[: -len(_POST)]
        match = _TILE.match(tile)
        if match is not None:
            out.append((match["event"], root / "images" / f"{tile}{_POST}.png"))
    return out


def _folders(root: Path, chip: int | None) -> list[tuple[str, Path]]:
    dirs = [root] if (root / "images").is_dir() else sorted(d for d in root.iterdir() if (d / "images").is_dir())
    return [
        (d.name, f)
        for d in dirs
        for f in sorted((d / "images").iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
    ]


LISTINGS: dict[str, Callable[[Path, int | None], list[tuple[str, Path]]]] = {"xbd": _xbd, "folders": _folders}
"""Formats with a listing: ``(domain, image path)`` per sample before chipping."""


def list_domains(root: Path, cfg: DataConfig) -> set[str] | None:
    """The domains under ``root`` (None when the format has no listing)."""
    lister = LISTINGS.get(cfg.format)
    if lister is None or not root.is_dir():
        return None
    return {domain for domain, _ in lister(root, cfg.chip)}


def count_samples(
    roots: Sequence[Path], cfg: DataConfig, domains: Sequence[str] | None = None
) -> dict[str, int] | None:
    """Samples per domain over ``roots`` (after ``data.chip``), or None if a format has no listing.

    With a chip size only the image headers are read, to count the chips.
    """
    lister = LISTINGS.get(cfg.format)
    if lister is None:
        return None
    wanted = domains or cfg.domains
    counts: Counter[str] = Counter()
    for root in roots:
        if not Path(root).is_dir():
            return None  # the loader reports the missing folder
        for domain, image in lister(Path(root), cfg.chip):
            if wanted is not None and domain not in wanted:
                continue
            counts[domain] += chips_of(image_size(image), cfg.chip) if cfg.chip and image.is_file() else 1
    return dict(sorted(counts.items()))
