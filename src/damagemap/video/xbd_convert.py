"""Convert xBD / xView2 tiles into an ISBDA-like COCO file.

Every building becomes a parent in ``buildings``; each damaged building is also a damage
instance of its building: minor → Slight, major → Severe, destroyed → Debris (no-damage and
un-classified buildings have no damage instance). Polygons come from ``features.xy`` (WKT, pixels).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import shapely
from PIL import Image

from damagemap.data.xbd import read_xbd_buildings
from damagemap.errors import InputError
from damagemap.io_atomic import write_text_atomic
from damagemap.video.config import CLASSES

log = logging.getLogger(__name__)

SUBTYPE_CLASS = {"minor-damage": "Slight", "major-damage": "Severe", "destroyed": "Debris"}


def xbd_to_coco(root: str | Path, out: str | Path, tiles: list[str] | None = None) -> dict[str, Any]:
    """Write ``out`` (COCO JSON) for the post-disaster tiles of ``root`` and return it.

    Args:
        root: xBD folder with ``images/`` and ``labels/``.
        out: JSON path. ``file_name`` entries are relative to its folder when that folder holds
            ``root``, else relative to ``root`` (readers never follow a ``file_name`` out of the
            image folder, so ``root`` must then be passed as ``--images``; a warning says so).
        tiles: tile names (e.g. ``joplin-tornado_00000002``); default: every post label file.
    """
    root, out = Path(root), Path(out)
    holds_root = root.resolve().is_relative_to(out.parent.resolve())
    base = out.parent if holds_root else root
    if not holds_root:
        log.warning(
            "%s is not inside the folder of %s: its file_name entries are relative to %s, so pass --images %s "
            "to damagemap video train/evaluate/experiment",
            root,
            out,
            root,
            root,
        )
    labels = sorted((root / "labels").glob("*_post_disaster.json"))
    if not labels:
        raise InputError(root / "labels", "no xBD *_post_disaster.json label files found")
    by_tile = {p.name[: -len("_post_disaster.json")]: p for p in labels}
    missing = sorted(set(tiles or []) - set(by_tile))
    if missing:
        raise InputError(root / "labels", f"tiles not found: {missing}")
    doc: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "buildings": [],
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)],
    }
    for image_id, tile in enumerate(tiles or sorted(by_tile), start=1):
        image_path = root / "images" / f"{tile}_post_disaster.png"
        if not image_path.is_file():
            raise InputError(by_tile[tile], f"image for this label file not found: {image_path}")
        with Image.open(image_path) as im:
            width, height = im.size
        doc["images"].append(
            {
                "id": image_id,
                "file_name": os.path.relpath(image_path.resolve(), base.resolve()),
                "width": width,
                "height": height,
                "tile": tile,
            }
        )
        for b in read_xbd_buildings(by_tile[tile]):
            _add_building(doc, image_id, b)
    write_text_atomic(out, json.dumps(doc))
    return doc


def _add_building(doc: dict[str, Any], image_id: int, building: dict[str, Any]) -> None:
    polygon = building["polygon"]
    x0, y0, x1, y1 = polygon.bounds
    bbox = [x0, y0, x1 - x0, y1 - y0]
    building_id = len(doc["buildings"]) + 1
    doc["buildings"].append(
        {"id": building_id, "image_id": image_id, "bbox": bbox, "uid": building["uid"], "subtype": building["subtype"]}
    )
    name = SUBTYPE_CLASS.get(building["subtype"])
    if name is None:
        return
    rings = [list(shapely.get_coordinates(p.exterior)[:-1].ravel()) for p in getattr(polygon, "geoms", [polygon])]
    doc["annotations"].append(
        {
            "id": len(doc["annotations"]) + 1,
            "image_id": image_id,
            "building_id": building_id,
            "category_id": CLASSES.index(name) + 1,
            "bbox": bbox,
            "area": float(polygon.area),
            "segmentation": [r for r in rings if len(r) >= 6],
            "iscrowd": 0,
        }
    )
