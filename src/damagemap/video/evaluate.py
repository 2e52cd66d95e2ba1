"""COCO evaluation with pycocotools: mask and box AP, AP@0.25, AP@0.5, per class."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

IOU_THRESHOLDS = np.concatenate([[0.25], np.linspace(0.5, 0.95, 10)])
"""AP@0.25 is an extra threshold in front of COCO's 0.50:0.05:0.95 (``params.iouThrs``)."""


def detections_to_coco(image_id: int, det: dict[str, Tensor], label_to_category: dict[int, int]) -> list[dict]:
    """COCO result entries (bbox xywh, RLE segmentation from masks > 0.5) for one image."""
    out = []
    boxes = det["boxes"].tolist()
    masks = det["masks"][:, 0].numpy() > 0.5 if "masks" in det else None
    for i, (score, label) in enumerate(zip(det["scores"].tolist(), det["labels"].tolist())):
        x0, y0, x1, y1 = boxes[i]
        entry = {
            "image_id": int(image_id),
            "category_id": label_to_category[int(label)],
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "score": float(score),
        }
        if masks is not None:
            rle = mask_utils.encode(np.asfortranarray(masks[i].astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            entry["segmentation"] = rle
        out.append(entry)
    return out


def _ap(precision: np.ndarray) -> float:
    """Mean over valid entries (pycocotools marks absent ones -1); -1 when none are valid."""
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else -1.0


def coco_evaluate(gt: dict[str, Any], results: list[dict], iou_type: str = "segm") -> dict[str, Any]:
    """AP (0.50:0.95), AP25, AP50 over all classes and per class, area ``all``, 100 detections.

    Args:
        gt: a COCO ground-truth document (``images``, ``annotations``, ``categories``).
        results: COCO result entries (see :func:`detections_to_coco`).
        iou_type: ``"segm"`` (masks) or ``"bbox"``.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {k: v for k, v in gt.items() if k != "buildings"}
        coco_gt.createIndex()
        if not results:
            return _empty(gt)
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.iouThrs = IOU_THRESHOLDS
        ev.evaluate()
        ev.accumulate()
    area, dets = ev.params.areaRngLbl.index("all"), len(ev.params.maxDets) - 1
    p = ev.eval["precision"][:, :, :, area, dets]  # [T, R, K]

    def summary(block: np.ndarray) -> dict[str, float]:
        return {"AP": _ap(block[1:]), "AP25": _ap(block[0]), "AP50": _ap(block[1])}

    names = {c["id"]: c["name"] for c in gt["categories"]}
    per_class = {names[c]: summary(p[:, :, k]) for k, c in enumerate(ev.params.catIds)}
    return {**summary(p), "per_class": per_class}


def _empty(gt: dict[str, Any]) -> dict[str, Any]:
    zero = {"AP": 0.0, "AP25": 0.0, "AP50": 0.0}
    return {**zero, "per_class": {c["name"]: dict(zero) for c in gt["categories"]}}
