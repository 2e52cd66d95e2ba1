"""Tests for damagemap.video.evaluate against pycocotools' own summary numbers."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from damagemap.video.evaluate import coco_evaluate, detections_to_coco

H = W = 40
CATS = [{"id": 1, "name": "Slight"}, {"id": 2, "name": "Severe"}, {"id": 3, "name": "Debris"}]


def _ann(i, image_id, cat, x, y, w, h):
    poly = [x, y, x + w, y, x + w, y + h, x, y + h]
    return {
        "id": i,
        "image_id": image_id,
        "category_id": cat,
        "bbox": [x, y, w, h],
        "area": w * h,
        "segmentation": [poly],
        "iscrowd": 0,
    }


GT = {
    "images": [
        {"id": 1, "width": W, "height": H, "file_name": "a.png"},
        {"id": 2, "width": W, "height": H, "file_name": "b.png"},
    ],
    "categories": CATS,
    "annotations": [
        _ann(1, 1, 1, 2, 2, 10, 10),
        _ann(2, 1, 2, 20, 20, 12, 8),
        _ann(3, 2, 1, 5, 25, 8, 8),
        _ann(4, 2, 3, 25, 3, 10, 14),
    ],
}


def _det(boxes, scores, labels):
    boxes = torch.tensor(boxes, dtype=torch.float32)
    masks = torch.zeros(len(boxes), 1, H, W)
    for m, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist()):
        m[0, y0:y1, x0:x1] = 0.9
    return {"boxes": boxes, "scores": torch.tensor(scores), "labels": torch.tensor(labels), "masks": masks}


def _results():
    cat = {1: 1, 2: 2, 3: 3}
    return detections_to_coco(
        1, _det([[2, 2, 12, 12], [22, 22, 32, 30], [0, 0, 6, 6]], [0.9, 0.6, 0.7], [1, 2, 1]), cat
    ) + detections_to_coco(
        2, _det([[5, 27, 13, 33], [25, 3, 35, 10], [25, 3, 35, 17]], [0.8, 0.5, 0.4], [1, 3, 3]), cat
    )


def _pycoco_stats(results, iou_type, iou_thrs=None, cat=None):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = GT
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), iou_type)
        if iou_thrs is not None:
            ev.params.iouThrs = np.array(iou_thrs)
        if cat is not None:
            ev.params.catIds = [cat]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_matches_pycocotools_summaries(iou_type):
    results = _results()
    ours = coco_evaluate(GT, results, iou_type)
    ref = _pycoco_stats(results, iou_type)
    assert ours["AP"] == pytest.approx(ref[0]) and ours["AP50"] == pytest.approx(ref[1])
    assert ours["AP25"] == pytest.approx(_pycoco_stats(results, iou_type, [0.25])[0])
    assert 0 < ours["AP"] < ours["AP50"] <= ours["AP25"] <= 1  # hand-made pair: partly right
    for c in CATS:
        per = ours["per_class"][c["name"]]
        ref_c = _pycoco_stats(results, iou_type, cat=c["id"])
        assert per["AP"] == pytest.approx(ref_c[0]) and per["AP50"] == pytest.approx(ref_c[1])
        assert per["AP25"] == pytest.approx(_pycoco_stats(results, iou_type, [0.25], c["id"])[0])


def test_perfect_and_empty_predictions():
    perfect = []
    for a in GT["annotations"]:
        x, y, w, h = a["bbox"]
        perfect += detections_to_coco(
            a["image_id"], _det([[x, y, x + w, y + h]], [1.0], [a["category_id"]]), {1: 1, 2: 2, 3: 3}
        )
    for kind in ("segm", "bbox"):
        s = coco_evaluate(GT, perfect, kind)
        assert s["AP"] == pytest.approx(1.0) and s["AP25"] == pytest.approx(1.0)
    assert coco_evaluate(GT, [], "segm")["AP50"] == 0.0
