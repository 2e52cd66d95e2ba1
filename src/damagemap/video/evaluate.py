"""COCO evaluation with pycocotools: mask and box AP, AP@0.25, AP@0.5, per class, with and without refinement."""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from rich.progress import Progress
from torch import Tensor

from damagemap.errors import InputError
from damagemap.video.config import RefineConfig
from damagemap.video.refine import detect_and_embed, refine_detections
from damagemap.video.sequence import FrameOrder, frame_order

if TYPE_CHECKING:
    from damagemap.video.coco import CocoDamageDataset
    from damagemap.video.model import MSNet

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


def evaluate_detections(
    gt: dict[str, Any],
    category_of: dict[int, int],
    detections: dict[int, dict[str, Tensor]],
    embeddings: dict[int, Tensor],
    order: FrameOrder,
    refine: RefineConfig,
) -> dict[str, Any]:
    """Mask and box AP of detections as predicted (``raw``) and after score refinement (``refined``).

    Refinement (:func:`~damagemap.video.refine.refine_detections`) runs over each video of
    ``order`` with at least two frames; unordered images and single frames keep their raw
    scores, and ``refinement`` says how many images that concerns.

    Args:
        gt: the COCO ground-truth document.
        category_of: model label → COCO ``category_id``.
        detections: per image id, the model's detections (``boxes``, ``scores``, ``labels``, ``masks``).
        embeddings: per image id, one SRN embedding per detection.
        order: the frame order of the images (:func:`~damagemap.video.sequence.frame_order`).
        refine: the recipe's ``refine`` section.
    """
    entries = {i: detections_to_coco(i, d, category_of) for i, d in detections.items()}
    refined_scores = {i: d["scores"] for i, d in detections.items()}
    videos = {v: ids for v, ids in order.videos.items() if len(ids) > 1 and all(i in detections for i in ids)}
    sequences = list(videos.values()) if refine.enabled else []
    for ids in sequences:
        new = refine_detections([detections[i] for i in ids], [embeddings[i] for i in ids], refine)
        refined_scores.update(zip(ids, new))
    raw = [e for es in entries.values() for e in es]
    refined = [dict(e, score=float(s)) for i, es in entries.items() for e, s in zip(es, refined_scores[i].tolist())]
    changed = sum(int((refined_scores[i] != d["scores"]).sum()) for i, d in detections.items())
    n_images = len(detections)
    n_refined = sum(len(ids) for ids in sequences)
    notes = []
    if not refine.enabled:
        notes.append("refinement is off in the recipe (refine.enabled: false): refined scores are the raw ones")
    if order.unordered:
        notes.append(
            f"{len(order.unordered)} of {n_images} images have no frame order (no video_id + frame_id, "
            "time/timestamp field or time in the file name): evaluated without refinement"
        )
    if order.single:
        notes.append(f"{len(order.single)} images are the only frame of their video: evaluated without refinement")
    if refine.enabled and not sequences:
        notes.append("no image has an adjacent frame: refined AP equals raw AP")
    info = {
        **refine.model_dump(),
        "videos": len(sequences),
        "ordered_by": sorted({order.keys[v] for v in videos}) if sequences else [],
        "images_refined": n_refined,
        "images_unrefined": n_images - n_refined,
        "images_unordered": len(order.unordered),
        "images_single_frame": len(order.single),
        "scores_changed": changed,
        "notes": notes,
    }
    return {
        "raw": {"segm": coco_evaluate(gt, raw, "segm"), "bbox": coco_evaluate(gt, raw, "bbox")},
        "refined": {"segm": coco_evaluate(gt, refined, "segm"), "bbox": coco_evaluate(gt, refined, "bbox")},
        "refinement": info,
        "n_images": n_images,
        "n_detections": len(raw),
    }


def evaluate_detector(
    model: MSNet, data: CocoDamageDataset, refine: RefineConfig, progress: Progress | None = None
) -> dict[str, Any]:
    """Detect on every image of ``data`` and score it with :func:`evaluate_detections`.

    Frames are ordered by :func:`~damagemap.video.sequence.frame_order`; the SRN embeddings
    come from :func:`~damagemap.video.refine.detect_and_embed`, as in prediction.

    Raises:
        InputError: the dataset has no images.
    """
    if len(data) == 0:
        raise InputError(data.path, "no images to evaluate")
    order = frame_order(data.images, data.path)
    model.eval()
    category_of = {label: cid for cid, label in data.label_of.items()}
    detections, embeddings = {}, {}
    task = progress.add_task("evaluate", total=len(data), info="") if progress else None
    for i in range(len(data)):
        image, target = data[i]
        image_id = int(target["image_id"])
        detections[image_id], embeddings[image_id] = detect_and_embed(model, image, refine.roi_size)
        if progress is not None and task is not None:
            progress.update(task, advance=1)
    return evaluate_detections(data.doc, category_of, detections, embeddings, order, refine)
