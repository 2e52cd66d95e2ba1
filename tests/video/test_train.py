"""Tests for damagemap.video.train: flips, one detector step, SRN triplet training."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from damagemap.video.coco import CocoDamageDataset
from damagemap.video.config import CLASSES, SRNConfig, TrainConfig
from damagemap.video.model import build_msnet
from damagemap.video.train import hflip, train_detector, train_srn
from tests.video.tiny import tiny_recipe


def test_hflip_boxes_and_masks():
    image = torch.arange(2 * 10, dtype=torch.float32).reshape(1, 2, 10)
    masks = torch.zeros(1, 2, 10, dtype=torch.uint8)
    masks[0, :, 1:3] = 1
    target = {
        "boxes": torch.tensor([[1.0, 0, 3, 2]]),
        "building_boxes": torch.tensor([[0.0, 0, 4, 2]]),
        "masks": masks,
        "labels": torch.tensor([1]),
    }
    img2, t2 = hflip(image, target)
    assert t2["boxes"].tolist() == [[7, 0, 9, 2]] and t2["building_boxes"].tolist() == [[6, 0, 10, 2]]
    assert torch.nonzero(t2["masks"][0, 0]).flatten().tolist() == [7, 8]
    assert torch.equal(img2[0, 0], image[0, 0].flip(0)) and target["boxes"].tolist() == [[1, 0, 3, 2]]


def test_one_detector_step_trains_detector_not_srn(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 128, "height": 128}],
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)],
        "buildings": [{"id": 1, "image_id": 1, "bbox": [10, 10, 60, 60]}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 2,
                "building_id": 1,
                "bbox": [20, 20, 30, 30],
                "segmentation": [[20, 20, 50, 20, 50, 50, 20, 50]],
                "area": 900,
                "iscrowd": 0,
            }
        ],
    }
    (tmp_path / "a.json").write_text(json.dumps(doc))
    torch.manual_seed(0)
    model = build_msnet(tiny_recipe())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = train_detector(
        model, CocoDamageDataset(tmp_path / "a.json", CLASSES), TrainConfig(iterations=1, batch_size=1, warmup=0)
    )
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    assert {"loss_building_objectness", "loss_damage_objectness", "loss_mask"} <= set(history[0])
    after = model.state_dict()
    assert not torch.equal(
        after["roi_heads.mask_predictor.mask_fcn_logits.weight"],
        before["roi_heads.mask_predictor.mask_fcn_logits.weight"],
    )
    assert not torch.equal(after["rpn.building.head.cls_logits.weight"], before["rpn.building.head.cls_logits.weight"])
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("srn."))
    assert not model.training


def test_srn_training_updates_only_srn():
    torch.manual_seed(0)
    model = build_msnet(tiny_recipe())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    frames = [torch.rand(3, 96, 96, generator=g) for _ in range(3)]
    losses = train_srn(model, frames, [0.0, 0.3, 12.0], SRNConfig(hidden=16, channels=8, iterations=3))
    assert len(losses) == 3 and all(np.isfinite(losses))
    after = model.state_dict()
    assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith("srn."))
    assert all(torch.equal(after[k], before[k]) for k in before if not k.startswith("srn."))
    assert train_srn(model, frames, [0.0, 0.3, 1.0], SRNConfig(iterations=3)) == []  # no negative ≥ 10 s
