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


# -- evaluation with and without score refinement -------------------------------------------------
TWO_FRAMES = {
    "images": [
        {"id": 1, "width": W, "height": H, "file_name": "a.png", "video_id": 7, "frame_id": 1},
        {"id": 2, "width": W, "height": H, "file_name": "b.png", "video_id": 7, "frame_id": 2},
    ],
    "categories": CATS,
    "annotations": [_ann(1, 1, 1, 2, 2, 10, 10), _ann(2, 2, 1, 20, 20, 12, 8)],
}


def _two_frame_detections():
    # frame 1: the true instance at 0.4 below a false one at 0.5; frame 2: true 0.9, false 0.1.
    # The SRN embeddings pair true with true and false with false across the two frames.
    dets = {
        1: _det([[2, 2, 12, 12], [25, 25, 35, 35]], [0.4, 0.5], [1, 1]),
        2: _det([[20, 20, 32, 28], [2, 25, 10, 35]], [0.9, 0.1], [1, 1]),
    }
    emb = {1: torch.eye(2), 2: torch.eye(2)}
    return dets, emb


def _evaluate(doc, refine):
    from damagemap.video.evaluate import evaluate_detections
    from damagemap.video.sequence import frame_order

    dets, emb = _two_frame_detections()
    return evaluate_detections(doc, {1: 1}, dets, emb, frame_order(doc["images"], "gt.json"), refine)


def test_refinement_changes_ap_on_adjacent_frames():
    from damagemap.video.config import RefineConfig

    scores = _evaluate(TWO_FRAMES, RefineConfig(c0=0.3, c1=0.7))
    # raw ranking 0.9 T, 0.5 F, 0.4 T, 0.1 F: the false 0.5 sits between the true ones.
    # refined: frame-1 true (0.4) ↔ frame-2 true (0.9) → 0.65 both; false 0.5 ↔ false 0.1 → 0.3
    # both, so every true detection ranks above every false one.
    for kind in ("segm", "bbox"):
        raw, refined = scores["raw"][kind], scores["refined"][kind]
        assert raw["AP50"] == pytest.approx(_pycoco_two_frames(kind, [0.4, 0.5, 0.9, 0.1]))
        assert raw["AP50"] < 0.9 and refined["AP50"] == pytest.approx(1.0) and refined["AP25"] == pytest.approx(1.0)
        assert refined["AP50"] == pytest.approx(_pycoco_two_frames(kind, [0.65, 0.3, 0.65, 0.3]))
    info = scores["refinement"]
    assert (info["videos"], info["images_refined"], info["scores_changed"], info["notes"]) == (1, 2, 4, [])
    assert info["ordered_by"] == ["frame_id"] and scores["n_detections"] == 4


def _pycoco_two_frames(kind, scores):
    dets, _ = _two_frame_detections()
    results = []
    for image_id, d in dets.items():
        n = len(d["scores"])
        d = dict(d, scores=torch.tensor(scores[2 * (image_id - 1) : 2 * (image_id - 1) + n]))
        results += detections_to_coco(image_id, d, {1: 1})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = TWO_FRAMES
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), kind)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[1]


def test_without_frame_order_or_with_refinement_off_refined_equals_raw():
    from damagemap.video.config import RefineConfig

    unordered = dict(
        TWO_FRAMES, images=[{k: v for k, v in im.items() if k != "video_id"} for im in TWO_FRAMES["images"]]
    )
    scores = _evaluate(unordered, RefineConfig())
    assert scores["refined"] == scores["raw"] and scores["refinement"]["images_refined"] == 0
    assert any("2 of 2 images have no frame order" in n for n in scores["refinement"]["notes"])
    off = _evaluate(TWO_FRAMES, RefineConfig(enabled=False))
    assert off["refined"] == off["raw"] and "refine.enabled: false" in off["refinement"]["notes"][0]


def test_video_evaluate_cli_reports_both(tmp_path):
    import json

    from typer.testing import CliRunner

    from damagemap.cli import app
    from damagemap.video.artifact import save_video_model
    from damagemap.video.model import build_msnet
    from tests.video.media import write_coco
    from tests.video.tiny import tiny_recipe

    torch.manual_seed(0)
    recipe = tiny_recipe(box_score_thresh=0.0)
    recipe.refine.c0, recipe.refine.c1 = 0.0, 1.0  # random model: every detection starts a pair
    save_video_model(build_msnet(recipe), recipe, tmp_path / "model")
    frames = [{"id": 1, "file_name": "f1.png", "video_id": 3, "frame_id": 1}]
    frames += [{"id": 2, "file_name": "f2.png", "video_id": 3, "frame_id": 2}, {"id": 3, "file_name": "x.png"}]
    data = write_coco(tmp_path, frames)
    runner = CliRunner()
    result = runner.invoke(app, ["video", "evaluate", str(tmp_path / "model"), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    for variant in ("raw", "refined"):
        for kind in ("segm", "bbox"):
            assert {"AP", "AP25", "AP50", "per_class"} <= set(scores[variant][kind])
    info = scores["refinement"]
    assert (info["images_refined"], info["images_unordered"]) == (2, 1) and info["scores_changed"] > 0
    assert any("1 of 3 images have no frame order" in n for n in info["notes"])
    assert any("SRN was never trained" in n for n in info["notes"])

    single = write_coco(tmp_path, [{"id": 1, "file_name": "x.png"}], name="one.json")
    table = runner.invoke(app, ["video", "evaluate", str(tmp_path / "model"), "--data", str(single)])
    assert table.exit_code == 0, table.output
    assert "tiny mask AP on one.json" in table.stdout and "tiny box AP" in table.stdout
    assert table.stdout.count("│ raw     │") == 2 * 4
    assert table.stdout.count("│ refined │") == 2 * 4  # mask and box: all + 3 classes
    assert "note: 1 of 1 images have no frame order" in table.stdout
    (tmp_path / "empty.json").write_text('{"images": [], "annotations": [], "categories": []}')
    empty = runner.invoke(app, ["video", "evaluate", str(tmp_path / "model"), "--data", str(tmp_path / "empty.json")])
    assert empty.exit_code == 3 and "empty.json: no images to evaluate" in " ".join(empty.output.split())
