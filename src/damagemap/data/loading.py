"""The data-format registry: a recipe's ``data.format`` names one of :data:`READERS`.

Every reader takes ``(root, data section, number of classes, domains, pre)`` and returns samples
(``pre``: also read the pre-event images, for pair recipes; formats without them ignore it and
:func:`load_samples` refuses); :func:`load_samples` checks the folder, dispatches, and applies
``data.chip``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from damagemap.data.bijie import read_bijie
from damagemap.data.chips import chip_samples
from damagemap.data.coco_polygons import read_coco_polygons
from damagemap.data.cvat import read_cvat
from damagemap.data.folders import read_image_mask_folders
from damagemap.data.landslide4sense import read_landslide4sense
from damagemap.data.smart_transfer import read_smart_transfer
from damagemap.data.xbd import read_xbd
from damagemap.errors import InputError
from damagemap.types import Sample

if TYPE_CHECKING:
    from damagemap.recipe import DataConfig

Reader = Callable[[Path, "DataConfig", "int | None", "Sequence[str] | None", bool], list[Sample]]


def _folders(
    root: Path, cfg: DataConfig, num_classes: int | None, domains: Sequence[str] | None, pre: bool
) -> list[Sample]:
    return read_image_mask_folders(root, domains, num_classes=num_classes, pre=pre)


def _smart_transfer(
    root: Path, cfg: DataConfig, num_classes: int | None, domains: Sequence[str] | None, pre: bool
) -> list[Sample]:
    return read_smart_transfer(root, domains)


def _xbd(
    root: Path, cfg: DataConfig, num_classes: int | None, domains: Sequence[str] | None, pre: bool
) -> list[Sample]:
    return read_xbd(root, use_pre=pre, damage=cfg.damage, domains=domains)


def _label_indexes(cfg: DataConfig) -> Mapping[str, int] | None:
    """``data.labels`` with class indexes: the recipe's validation replaced class names by indexes."""
    return cast("Mapping[str, int] | None", cfg.labels)


def _cvat(
    root: Path, cfg: DataConfig, num_classes: int | None, domains: Sequence[str] | None, pre: bool
) -> list[Sample]:
    return read_cvat(root, _label_indexes(cfg), domains)


def _coco(
    root: Path, cfg: DataConfig, num_classes: int | None, domains: Sequence[str] | None, pre: bool
) -> list[Sample]:
    return read_coco_polygons(root, _label_indexes(cfg), domains)


def _landslide4sense(
    root: Path, cfg: DataConfig, num_classes: int | None, domains: Sequence[str] | None, pre: bool
) -> list[Sample]:
    return read_landslide4sense(root, domains)


def _bijie(
    root: Path, cfg: DataConfig, num_classes: int | None, domains: Sequence[str] | None, pre: bool
) -> list[Sample]:
    return read_bijie(root)  # one domain (the folder name); `domains` does not apply


READERS: dict[str, Reader] = {
    "folders": _folders,
    "smart_transfer": _smart_transfer,
    "xbd": _xbd,
    "cvat": _cvat,
    "coco": _coco,
    "landslide4sense": _landslide4sense,
    "bijie": _bijie,
}
"""Reader of each ``data.format`` (the README's data-format table describes the layouts)."""


def load_samples(
    root: str | Path,
    cfg: DataConfig,
    num_classes: int | None = None,
    domains: list[str] | None = None,
    pre: bool = False,
) -> list[Sample]:
    """Read every labelled sample under ``root`` in the recipe's data format.

    ``domains`` (or else ``cfg.domains``) restricts reading to those domains; ``pre`` reads the
    pre-event images too (pair recipes: xBD's ``*_pre_disaster.png``, a ``pre/`` folder beside
    ``images/`` in the ``folders`` format).
    """
    root = Path(root)
    if not root.exists():
        raise InputError(root, "data folder does not exist")
    if cfg.format not in READERS:  # recipes are validated against READERS; a hand-built config may not be
        raise InputError(root, f"unknown data format {cfg.format!r}; known: {', '.join(READERS)}")
    samples = READERS[cfg.format](root, cfg, num_classes, domains or cfg.domains, pre)
    if not samples:
        raise InputError(root, f"no samples found for format {cfg.format!r}")
    if pre and any(s.pre is None for s in samples):
        raise InputError(
            root,
            f"data format {cfg.format!r} has no pre-event images; a pair recipe (input.pair) reads them from "
            "xbd (*_pre_disaster.png), folders (a pre/ folder beside images/) or --scene with --pre",
        )
    if cfg.chip:
        samples = chip_samples(samples, cfg.chip)
    return samples
