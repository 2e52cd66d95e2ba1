"""Reader for COCO polygon (or RLE) segmentation annotations as semantic masks.

Layout: ``<root>/<domain>/*.json`` (COCO ``images`` / ``annotations`` / ``categories``) with the
images next to the JSON file or in an ``images/`` folder beside it; if ``root`` itself holds
JSON files it is one domain named after the folder. Category names become classes through the
recipe's ``data.labels`` table (a name missing from it is an error naming the file). Masks are
decoded with pycocotools and painted largest annotation first, so smaller objects lying on
larger ones stay visible; unannotated pixels are background (class 0). Images without
annotations are kept as all-background samples.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from damagemap.data.cvat import _find_image
from damagemap.errors import InputError
from damagemap.types import Sample


def read_coco_json(json_path: str | Path, labels: Mapping[str, int], domain: str) -> list[Sample]:
    """Read every image of one COCO annotations file into samples (see the module docstring)."""
    from pycocotools.coco import COCO

    from damagemap.data.io import read_image

    json_path = Path(json_path)
    try:
        data = json.loads(json_path.read_text())
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        images = data["images"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(json_path, f"not a COCO annotations file ({type(exc).__name__}: {exc})") from None
    unknown = sorted({n for n in categories.values() if n not in labels})
    if unknown:
        raise InputError(
            json_path,
            f"categories {unknown} are not in the label table (data.labels: {', '.join(sorted(labels)) or 'empty'})",
        )
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
    samples = []
    for info in images:
        h, w = int(info["height"]), int(info["width"])
        anns = sorted(coco.imgToAnns.get(info["id"], []), key=lambda a: -float(a.get("area", 0)))
        mask = np.zeros((h, w), dtype=np.int64)
        for ann in anns:
            if ann["category_id"] not in categories:
                raise InputError(json_path, f"annotation {ann.get('id')} has unknown category_id {ann['category_id']}")
            try:
                mask[coco.annToMask(ann).astype(bool)] = labels[categories[ann["category_id"]]]
            except (IndexError, ValueError, TypeError) as exc:
                raise InputError(json_path, f"annotation {ann.get('id')}: bad segmentation ({exc})") from None
        image_path = _find_image(json_path, info["file_name"])
        image = read_image(image_path)
        if image.shape[1:] != (h, w):
            raise InputError(
                image_path, f"image is {image.shape[1]}x{image.shape[2]} (HxW) but {json_path} says {h}x{w}"
            )
        meta = {"image_path": str(image_path), "annotations": str(json_path)}
        samples.append(Sample(image=image, mask=mask, domain=domain, id=Path(info["file_name"]).stem, meta=meta))
    return samples


def read_coco_polygons(
    root: str | Path, labels: Mapping[str, int] | None, domains: Sequence[str] | None = None
) -> list[Sample]:
    """Read ``<root>/<domain>/*.json`` COCO annotations (or ``<root>/*.json`` as one domain)."""
    root = Path(root)
    if not labels:
        raise InputError(
            root, "COCO polygons need a label table: set data.labels in the recipe (category name → class name)"
        )
    if any(root.glob("*.json")) and not domains:
        groups = {root.name: sorted(root.glob("*.json"))}
    else:
        names = domains or sorted(d.name for d in root.iterdir() if d.is_dir() and any(d.glob("*.json")))
        missing = [d for d in names if not (root / d).is_dir()]
        if missing:
            raise InputError(root, f"domain folder(s) not found: {', '.join(missing)}")
        groups = {d: sorted((root / d).glob("*.json")) for d in names}
    return [s for domain, files in groups.items() for f in files for s in read_coco_json(f, labels, domain)]
