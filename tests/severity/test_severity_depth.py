"""Depth for the severity score: the ground-plane fallback and a Hugging Face depth model."""

import math

import numpy as np
import pytest
import torch

from damagemap.errors import CheckpointError
from damagemap.severity.config import GroundPlaneConfig
from damagemap.severity.depth import DepthModel, focal_px, ground_plane_depth


def test_ground_plane_depth_follows_similar_triangles() -> None:
    cfg = GroundPlaneConfig(horizon=0.25, camera_height_m=2.0, hfov_deg=90.0, max_depth_m=50.0)
    d = ground_plane_depth(100, 40, cfg)
    f = focal_px(40, 90.0)
    assert f == pytest.approx(20.0)  # tan(45°) = 1
    # row 74: centre 74.5, horizon 25 → 49.5 px below → d = 20·2 / 49.5
    assert d[74, 0] == pytest.approx(40 / 49.5)
    assert (d == d[:, :1]).all()  # one depth per row
    below = d[26:, 0]
    assert (np.diff(below) <= 0).all()  # nearer towards the bottom
    assert (d[:25] == 50.0).all()  # at/above the horizon: the cap
    assert d[25, 0] == pytest.approx(min(40 / 0.5, 50.0))


def _tiny_depth_anything(path, metric=False):
    from transformers import AutoModelForDepthEstimation, DepthAnythingConfig, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        patch_size=14,
        image_size=28,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    cfg = DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[8, 8, 8, 8],
        fusion_hidden_size=8,
        head_hidden_size=4,
        reassemble_hidden_size=16,
        depth_estimation_type="metric" if metric else "relative",
    )
    torch.manual_seed(0)
    model = AutoModelForDepthEstimation.from_config(cfg).eval()
    with torch.no_grad():  # random weights give ~1e-10 disparities; lift them to order 1
        model.head.conv3.weight.mul_(100.0)
        model.head.conv3.bias.fill_(1.0)
    model.save_pretrained(path)
    return model


def test_depth_anything_round_trip_inverts_disparity(tmp_path) -> None:
    ref = _tiny_depth_anything(tmp_path / "da")
    dm = DepthModel.from_pretrained(tmp_path / "da")
    assert not dm.metric and dm.patch == 14 and "inverse depth" in dm.source
    image = np.random.default_rng(1).random((3, 30, 44)).astype(np.float32)
    depth = dm.predict(image, size=28)
    assert depth.shape == (30, 44) and np.isfinite(depth).all() and (depth > 0).all()
    # same weights as the saved model: its disparity, upsampled, inverted (above the 1e-3 floor);
    # longer side 44 → 28 px, rounded to the 14 px patch: 30x44 → 14x28
    x = torch.nn.functional.interpolate(torch.from_numpy(image)[None], size=(14, 28), mode="bicubic").clamp(0, 1)
    x = (x - torch.tensor(dm.mean).view(1, 3, 1, 1)) / torch.tensor(dm.std).view(1, 3, 1, 1)
    with torch.no_grad():
        disp = ref(pixel_values=x).predicted_depth[None]
    disp = torch.nn.functional.interpolate(disp, size=(30, 44), mode="bilinear")[0, 0].double().numpy()
    ok = disp > disp.max() * 1e-3
    assert ok.mean() > 0.5 and np.ptp(depth[ok]) > 0
    assert np.allclose(depth[ok], 1 / disp[ok], rtol=1e-4)


def test_metric_models_are_not_inverted(tmp_path) -> None:
    _tiny_depth_anything(tmp_path / "m", metric=True)
    dm = DepthModel.from_pretrained(tmp_path / "m")
    assert dm.metric and "metric" in dm.source


def test_missing_or_mismatched_depth_checkpoint(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no config.json"):
        DepthModel.from_pretrained(tmp_path)
    _tiny_depth_anything(tmp_path / "da")
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "da" / "model.safetensors")
    weights.pop(next(iter(weights)))
    save_file(weights, tmp_path / "da" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="do not match"):
        DepthModel.from_pretrained(tmp_path / "da")


def test_focal_length_from_field_of_view() -> None:
    assert focal_px(1000, 60.0) == pytest.approx(500 / math.tan(math.radians(30)))
