"""Dispatch a recipe's ``data`` section to the matching reader."""

from __future__ import annotations

from pathlib import Path

from damagemap.errors import InputError
from damagemap.recipe import DataConfig
from damagemap.types import Sample


def load_samples(root: str | Path, cfg: DataConfig, num_classes: int | None = None,
                 domains: list[str] | None = None) -> list[Sample]:
    """Read every labelled sample under ``root`` in the recipe's data format.

    ``domains`` (or else ``cfg.domains``) restricts reading to those domains.
    """
    from damagemap.data.folders import read_image_mask_folders
    from damagemap.data.smart_transfer import read_smart_transfer
    from damagemap.data.xbd import read_xbd

    root = Path(root)
    if not root.exists():
        raise InputError(root, "data folder does not exist")
    domains = domains or cfg.domains
    if cfg.format == "folders":
        samples = read_image_mask_folders(root, domains, num_classes=num_classes)
    elif cfg.format == "smart_transfer":
        samples = read_smart_transfer(root, domains)
    elif cfg.format == "cvat":
        from damagemap.data.cvat import read_cvat

        samples = read_cvat(root, cfg.labels, domains)
    elif cfg.format == "coco":
        from damagemap.data.coco_polygons import read_coco_polygons

        samples = read_coco_polygons(root, cfg.labels, domains)
    elif cfg.format == "landslide4sense":
        from damagemap.data.landslide4sense import read_landslide4sense

        samples = read_landslide4sense(root, domains)
    elif cfg.format == "bijie":
        from damagemap.data.bijie import read_bijie

        samples = read_bijie(root)  # one domain (the folder name); `domains` does not apply
    else:
        samples = read_xbd(root, damage=cfg.damage, domains=domains)
    if not samples:
        raise InputError(root, f"no samples found for format {cfg.format!r}")
    if cfg.chip:
        from damagemap.data.chips import chip_samples

        samples = chip_samples(samples, cfg.chip)
    return samples
