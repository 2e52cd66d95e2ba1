"""COCO-style instance datasets in the ISBDA layout (damage instances inside damaged buildings).

A file holds the usual ``images``, ``categories`` (Slight / Severe / Debris) and
``annotations`` (``bbox``, ``segmentation``, ``category_id``) plus, per annotation, the
``building_id`` of its building, and a top-level ``buildings`` list (``id``, ``image_id``,
``bbox`` as x, y, w, h). The building RPN is trained on the boxes of buildings that hold at
least one damage instance. ``file_name`` is relative to the image folder (default: the JSON's
folder) and must stay inside it: an absolute name or one that climbs out with ``..`` is refused.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from pycocotools.coco import COCO
from torch import Tensor

from damagemap.data.io import read_image
from damagemap.errors import InputError
from damagemap.safepath import inside


def load_coco(path: str | Path) -> dict[str, Any]:
    """Read a COCO JSON file, checking the keys this package relies on."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        for key in ("images", "annotations", "categories"):
            if not isinstance(doc[key], list):
                raise TypeError(f"{key!r} is not a list")
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(path, f"not a COCO instances file ({type(err).__name__}: {err})") from None
    doc.setdefault("buildings", [])
    return doc


def subset_coco(doc: dict[str, Any], image_ids: Collection[int]) -> dict[str, Any]:
    """A copy of a COCO document with only the given images and their annotations and buildings."""
    keep = {int(i) for i in image_ids}
    return {
        **doc,
        "images": [im for im in doc["images"] if im["id"] in keep],
        "annotations": [a for a in doc["annotations"] if a["image_id"] in keep],
        "buildings": [b for b in doc.get("buildings", []) if b["image_id"] in keep],
    }


class CocoDamageDataset(torch.utils.data.Dataset):
    """Images with their damage instances as torchvision Mask R-CNN targets.

    Each item is ``(image [3, H, W] float in [0, 1], target)`` with ``boxes`` (xyxy), ``labels``
    (category index 1..K in ``classes`` order), ``masks`` (uint8 ``[N, H, W]``),
    ``building_boxes`` and ``image_id``. All image files are checked when the dataset is made.
    With ``image_ids`` only those images (and their annotations and buildings) are kept, in
    ``doc`` too, so evaluation against ``doc`` scores just that subset.
    """

    def __init__(
        self,
        path: str | Path,
        classes: list[str],
        image_root: str | Path | None = None,
        image_ids: Collection[int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.doc = load_coco(self.path)
        if image_ids is not None:
            self.doc = subset_coco(self.doc, image_ids)
        self.root = Path(image_root) if image_root is not None else self.path.parent
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.coco = COCO()
            self.coco.dataset = self.doc
            self.coco.createIndex()
        names = {c["id"]: c["name"] for c in self.doc["categories"]}
        unknown = sorted(set(names.values()) - set(classes))
        if unknown:
            raise InputError(self.path, f"categories {unknown} are not among the recipe's classes {classes}")
        self.label_of = {cid: classes.index(name) + 1 for cid, name in names.items()}
        self.images = sorted(self.doc["images"], key=lambda im: im["id"])
        for im in self.images:
            if not self.image_path(im).is_file():
                raise InputError(self.path, f"image {im['id']} file not found: {self.image_path(im)}")
        self.buildings: dict[int, list[dict]] = {}
        for b in self.doc["buildings"]:
            self.buildings.setdefault(b["image_id"], []).append(b)

    def image_path(self, image: dict) -> Path:
        """Where the file of a COCO ``images`` entry is (inside the image folder).

        Raises:
            InputError: ``file_name`` is absolute or leaves the image folder.
        """
        return inside(self.root, str(image["file_name"]), self.path)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        im = self.images[index]
        image = read_image(self.image_path(im))[:3]
        h, w = image.shape[1:]
        if (im.get("height", h), im.get("width", w)) != (h, w):
            raise InputError(
                self.image_path(im), f"image is {h}x{w} but {self.path.name} says {im.get('height')}x{im.get('width')}"
            )
        anns = [a for a in self.coco.imgToAnns.get(im["id"], []) if not a.get("iscrowd", 0)]
        masks = np.stack([self.coco.annToMask(a) for a in anns]) if anns else np.zeros((0, h, w), np.uint8)
        # axis 1 of a 2-D array: always an array (numpy's stubs also allow a scalar np.bool)
        keep = cast(np.ndarray, masks.reshape(len(anns), -1).any(1)) if anns else np.zeros(0, bool)
        keep_t = torch.from_numpy(keep)
        boxes = [_xyxy(a["bbox"]) for a in anns]
        with_damage = {a.get("building_id") for a in anns}
        buildings = [_xyxy(b["bbox"]) for b in self.buildings.get(im["id"], []) if b["id"] in with_damage]
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)[keep_t],
            "labels": torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64)[keep_t],
            "masks": torch.from_numpy(masks[keep]),
            "building_boxes": torch.tensor(buildings, dtype=torch.float32).reshape(-1, 4),
            "image_id": torch.tensor(im["id"]),
        }
        return torch.from_numpy(image), target


def _xyxy(bbox: list[float]) -> list[float]:
    x, y, w, h = bbox
    return [x, y, x + max(w, 1.0), y + max(h, 1.0)]
