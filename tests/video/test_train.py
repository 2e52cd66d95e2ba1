"""Tests for damagemap.video.train: flips, one detector step, SRN triplet training."""

from __future__ import annotations

import json

import numpy as np
import torch
import yaml
from PIL import Image

from damagemap.video.coco import CocoDamageDataset
from damagemap.video.config import CLASSES, SRNConfig, TrainConfig
from damagemap.video.frames import read_frames
from damagemap.video.model import build_msnet
from damagemap.video.train import hflip, train_detector, train_srn
from tests.video.media import write_coco, write_mp4
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
    run = train_srn(model, frames, [0.0, 0.3, 12.0], SRNConfig(hidden=16, channels=8, iterations=3))
    assert len(run.losses) == 3 and all(np.isfinite(run.losses)) and run.problem is None
    after = model.state_dict()
    assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith("srn."))
    assert all(torch.equal(after[k], before[k]) for k in before if not k.startswith("srn."))
    short = train_srn(model, frames, [0.0, 0.3, 1.0], SRNConfig(iterations=3))
    assert short.losses == [] and short.problem.startswith("no negative: the frames span 1.0 s")


def _srn_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith("srn.")}


def test_srn_on_a_1fps_folder_reports_no_positive_pair(tmp_path):
    from damagemap.video.train import train_srn_on_video, train_srn_on_videos

    rng = np.random.default_rng(0)
    for i in range(12):  # 12 frames at video.folder_fps = 1: 1 s apart, 11 s in all
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"f{i:02d}.png")
    torch.manual_seed(0)
    recipe = tiny_recipe()
    model = build_msnet(recipe)
    before = _srn_state(model)
    frames = [torch.from_numpy(f.image) for f in read_frames(tmp_path)]
    run = train_srn(model, frames, [float(i) for i in range(12)], recipe.srn)
    assert run.losses == [] and run.problem.startswith("no positive pair: no two frames are within")
    record = train_srn_on_video(model, tmp_path, recipe.srn, recipe.video)
    assert (record["fps"], record["stride"], record["frames"], record["steps"]) == (1.0, 1, 12, 0)
    assert "no positive pair" in record["problem"] and "video.folder_fps = 1.0" in record["problem"]
    summary = train_srn_on_videos(model, [tmp_path], recipe.srn, recipe.video)
    assert not summary["trained"] and "no positive pair" in summary["problem"]
    assert all(torch.equal(v, before[k]) for k, v in _srn_state(model).items())  # nothing trained


def test_srn_stride_from_the_frame_rate_gives_positives(tmp_path):
    from damagemap.video.train import train_srn_on_video

    # 10 fps for 11 s: video.every = 10 (prediction) would sample frames 1 s apart, no positive
    frames = [np.full((32, 32, 3), (7 * i) % 255, np.uint8) for i in range(110)]
    video = write_mp4(tmp_path / "v.mp4", frames, fps=10)
    recipe = tiny_recipe()
    recipe.video.every, recipe.srn.iterations = 10, 1
    torch.manual_seed(0)
    model = build_msnet(recipe)
    before = _srn_state(model)
    record = train_srn_on_video(model, video, recipe.srn, recipe.video, seed=0)
    # stride floor(10 · 0.5 / 2) = 2: frames 0.2 s ≤ positive_s / 2 = 0.25 s apart
    assert (record["fps"], record["stride"], record["spacing_s"], record["frames"]) == (10.0, 2, 0.2, 55)
    assert record["problem"] is None and record["steps"] == 1 and np.isfinite(record["final_loss"])
    assert any(not torch.equal(v, before[k]) for k, v in _srn_state(model).items())


def test_video_train_cli_warns_and_records_no_positive_pair(tmp_path):
    from typer.testing import CliRunner

    from damagemap.cli import app
    from damagemap.video.artifact import load_video_model

    data = write_coco(tmp_path, [{"id": 1, "file_name": "a.png"}])
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(np.full((32, 32, 3), 20 * i, np.uint8)).save(folder / f"{i:03d}.png")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe().model_dump(mode="json", by_alias=True)))
    args = ["video", "train", str(recipe), "--data", str(data), "--out", str(tmp_path / "m"), "--video", str(folder)]
    result = CliRunner().invoke(app, [*args, "--set", "train.iterations=1", "--set", "train.batch_size=1"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "warning: SRN not trained on" in said and "no positive pair" in said
    assert "the SRN stays untrained" in said
    srn = load_video_model(tmp_path / "m")[2]["metrics"]["srn"]
    assert not srn["trained"] and srn["steps"] == 0 and "no positive pair" in srn["problem"]
    assert srn["videos"][0]["stride"] == 1 and srn["videos"][0]["fps"] == 1.0


def test_no_damage_instances_is_an_input_error(tmp_path):
    import pytest

    from damagemap.errors import InputError

    data = write_coco(tmp_path, [{"id": 1, "file_name": "a.png"}])
    doc = json.loads(data.read_text())
    data.write_text(json.dumps(doc | {"annotations": []}))
    with pytest.raises(InputError, match=r"data.json: no image has damage instances to train on"):
        train_detector(None, CocoDamageDataset(data, CLASSES), TrainConfig(iterations=1))
