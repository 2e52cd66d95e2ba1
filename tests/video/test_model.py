"""Tests for damagemap.video.model, config and artifact on a tiny (128 px) MSNet."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet50
from torchvision.ops.misc import FrozenBatchNorm2d

from damagemap.errors import CheckpointError, ConfigError
from damagemap.video.artifact import load_video_model, save_video_model
from damagemap.video.config import apply_video_overrides, load_video_recipe
from damagemap.video.model import build_msnet
from damagemap.video.rpn import HierarchicalRPN
from tests.video.tiny import tiny_recipe


def _sample():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 128, 128, generator=g)
    masks = torch.zeros(2, 128, 128, dtype=torch.uint8)
    masks[0, 20:50, 30:60] = 1
    masks[1, 70:90, 70:110] = 1
    target = {
        "boxes": torch.tensor([[30.0, 20, 60, 50], [70.0, 70, 110, 90]]),
        "labels": torch.tensor([1, 3]),
        "masks": masks,
        "building_boxes": torch.tensor([[25.0, 15, 70, 60], [60.0, 60, 120, 100]]),
    }
    return image, target


@pytest.mark.parametrize(
    "rpn, keys",
    [
        (
            "hierarchical",
            {
                "loss_building_objectness",
                "loss_building_rpn_box_reg",
                "loss_damage_objectness",
                "loss_damage_rpn_box_reg",
            },
        ),
        ("single", {"loss_objectness", "loss_rpn_box_reg"}),
    ],
)
def test_training_losses(rpn, keys):
    torch.manual_seed(0)
    model = build_msnet(tiny_recipe(rpn=rpn)).train()
    image, target = _sample()
    losses = model([image], [target])
    assert set(losses) == keys | {"loss_classifier", "loss_box_reg", "loss_mask"}
    assert all(torch.isfinite(v) for v in losses.values())
    if rpn == "hierarchical":
        assert isinstance(model.rpn, HierarchicalRPN)
        keep = model.rpn.last_keep[0]
        assert 0 < keep.sum() < len(keep)  # the gate removed some anchors, not all
        # ground-truth buildings are among the gate boxes while training (gate_add_gt)
        assert torch.equal(model.rpn.last_buildings[0][-2:], target["building_boxes"])


def test_artifact_roundtrip_same_detections(tmp_path):
    torch.manual_seed(0)
    recipe = tiny_recipe()
    model = build_msnet(recipe).eval()
    image, _ = _sample()
    before, _, _ = model.detect([image])
    save_video_model(model, recipe, tmp_path / "m", {"note": 1})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["manifest.json", "model.safetensors"]
    loaded, r2, manifest = load_video_model(tmp_path / "m")
    after, _, _ = loaded.detect([image])
    assert r2 == recipe and manifest["metrics"] == {"note": 1}
    assert len(before[0]["scores"]) > 0
    for k in ("boxes", "scores", "labels", "masks"):
        torch.testing.assert_close(after[0][k], before[0][k])
    with pytest.raises(ConfigError, match="not a damagemap video model directory"):
        load_video_model(tmp_path)


def test_backbone_checkpoints(tmp_path):
    torch.manual_seed(1)
    reference = resnet50(weights=None)
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    model = build_msnet(tiny_recipe(), checkpoint=tmp_path / "resnet50.pth")
    torch.testing.assert_close(model.backbone.body.layer4[2].conv3.weight, reference.layer4[2].conv3.weight)
    assert isinstance(model.backbone.body.bn1, FrozenBatchNorm2d)
    assert not model.backbone.body.layer1[0].conv1.weight.requires_grad  # 3 trainable layers: 2-4
    # a Mask R-CNN state dict: backbone.* keys are used, heads ignored
    torch.save(
        {f"backbone.{k}": v for k, v in model.backbone.state_dict().items()} | {"rpn.x": torch.zeros(1)},
        tmp_path / "maskrcnn.pth",
    )
    again = build_msnet(tiny_recipe(), checkpoint=tmp_path / "maskrcnn.pth")
    torch.testing.assert_close(
        again.backbone.fpn.layer_blocks[0][0].weight, model.backbone.fpn.layer_blocks[0][0].weight
    )

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth: cannot read"):
        build_msnet(tiny_recipe(), checkpoint=tmp_path / "junk.pth")
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "head.w": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(
        CheckpointError, match=r"(?s)other.pth: keys do not match .*resnet50.*unexpected keys \(1\): head.w"
    ):
        build_msnet(tiny_recipe(), checkpoint=tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not found"):
        build_msnet(tiny_recipe(), checkpoint=tmp_path / "none.pth")


def test_recipes_validate(tmp_path):
    from tests.conftest import REPO_ROOT

    msnet = load_video_recipe(REPO_ROOT / "recipes" / "video" / "msnet.yaml")
    base = load_video_recipe(REPO_ROOT / "recipes" / "video" / "maskrcnn_baseline.yaml")
    assert (msnet.model.rpn, msnet.model.gate, msnet.model.gate_threshold) == ("hierarchical", "ii", 0.3)
    assert base.model.rpn == "single" and not base.refine.enabled
    assert not msnet.refine.same_label and (msnet.srn.positive_s, msnet.srn.negative_s) == (0.5, 10.0)
    assert apply_video_overrides(msnet, ["model.gate=iou", "refine.c1=0.8"]).model.gate == "iou"
    (tmp_path / "r.yaml").write_text("model:\n  gates: ii\n")
    with pytest.raises(ConfigError, match="r.yaml: invalid video recipe — model.gates: Extra inputs"):
        load_video_recipe(tmp_path / "r.yaml")
    with pytest.raises(ConfigError, match="refine: Value error, c0"):
        apply_video_overrides(msnet, ["refine.c0=0.9"])
