"""Depth for the severity score: the ground-plane fallback and a Hugging Face depth model."""

import math

import numpy as np
import pytest
import torch

from damagemap.errors import CheckpointError
from damagemap.severity.config import GroundPlaneConfig
from damagemap.severity.depth import DepthModel, focal_px, ground_plane_depth
from damagemap.severity.score import severity_score


def test_ground_plane_depth_follows_similar_triangles() -> None:
    cfg = GroundPlaneConfig(horizon=0.25, camera_height_m=2.0, hfov_deg=90.0)
    d = ground_plane_depth(100, 40, cfg)
    f = focal_px(40, 90.0)
    assert f == pytest.approx(20.0)  # tan(45°) = 1
    # row 74: centre 74.5, horizon 25 → 49.5 px below → d = 20·2 / 49.5
    assert d[74, 0] == pytest.approx(40 / 49.5)
    assert (d == d[:, :1]).all()  # one depth per row
    below = d[26:, 0]
    assert (np.diff(below) <= 0).all()  # nearer towards the bottom
    cap = 2.0 / math.tan(math.radians(3.0))  # h / tan(horizon tolerance): 38.2 m
    assert cfg.depth_cap_m == pytest.approx(cap)
    assert (d[:25] == cfg.depth_cap_m).all()  # at/above the horizon: the cap
    # rows less than 3° below the horizon (20·tan 3° = 1.05 px: row 25) get it too; the next follow the formula
    assert d[25, 0] == cfg.depth_cap_m and d[26, 0] == pytest.approx(40 / 1.5)
    lower = GroundPlaneConfig(horizon=0.25, camera_height_m=2.0, hfov_deg=90.0, max_depth_m=10.0)
    assert lower.depth_cap_m == 10.0 and (ground_plane_depth(100, 40, lower)[:25] == 10.0).all()
    assert GroundPlaneConfig(max_depth_m=100.0).depth_cap_m == pytest.approx(30.53, abs=0.01)  # only lowers it


H, W = 96, 128  # a 4:3 landscape photo
SKY, FOOT = 14, 62  # rows [0, 14) sky, [14, 62) building facade, [62, 96) street; horizon at row 48
STREET = GroundPlaneConfig()  # the recipes' geometry: horizon 0.5, camera 1.6 m, hfov 60°, tolerance 3°


def _photo_layout(upper: int = 1) -> np.ndarray:
    """Class map: sky (background 0), facade spanning the horizon, street (undamaged road, 1).

    The facade is undamaged (1) below the horizon and ``upper`` at and above it.
    """
    labels = np.zeros((H, W), np.int64)
    labels[SKY:FOOT] = 1
    labels[SKY : int(STREET.horizon * H)] = upper
    labels[FOOT:] = 1
    return labels


def _legacy_depth() -> np.ndarray:
    """The fallback before the fix: rows at/above the horizon (and just below) at 100 m."""
    f = focal_px(W, STREET.hfov_deg)
    dv = np.arange(H) + 0.5 - STREET.horizon * H
    rows = np.where(dv > 0, f * STREET.camera_height_m / np.maximum(dv, 1e-9), np.inf)
    return np.repeat(np.minimum(rows, 100.0)[:, None], W, axis=1)


def test_rows_at_and_above_the_horizon_cannot_outweigh_the_foreground() -> None:
    depth = ground_plane_depth(H, W, STREET)
    assert depth[-1, 0] == pytest.approx(3.73, abs=0.01)  # the bottom row: street 3.7 m away
    # one upper-row pixel against one bottom-row pixel: below 100× (was (100 / 3.73)² ≈ 720×)
    assert depth.max() ** 2 / depth[-1, 0] ** 2 < 100 < _legacy_depth().max() ** 2 / depth[-1, 0] ** 2
    structure = _photo_layout() > 0
    upper = structure & (np.arange(H)[:, None] < STREET.horizon * H)
    assert upper.sum() / structure.sum() == pytest.approx(34 / 82)  # 41 % of the structure pixels

    def upper_share(d: np.ndarray) -> float:
        return float((d**2)[upper].sum() / (d**2)[structure].sum())

    # the upper rows are farther, so they carry more weight than pixels, but at most 4/5 (was > 9/10)
    assert upper_share(depth) < 0.8 < 0.9 < upper_share(_legacy_depth())


def test_damage_only_in_the_upper_rows_no_longer_decides_the_score() -> None:
    classes, degrees = ["background", "undamaged", "damaged"], {"undamaged": 0.0, "damaged": 1.0}
    labels = _photo_layout(upper=2)  # the facade is damaged at and above the horizon, nothing else
    legacy = severity_score(labels, _legacy_depth(), classes, degrees, {"none": 0.0}).score
    now = severity_score(labels, ground_plane_depth(H, W, STREET), classes, degrees, {"none": 0.0}).score
    # the facade as a vertical wall at the depth of its foot (row 62, 12.2 m): the physical answer
    wall = ground_plane_depth(H, W, STREET)
    wall[SKY:FOOT] = wall[FOOT, 0]
    true = severity_score(labels, wall, classes, degrees, {"none": 0.0}).score
    assert legacy is not None and now is not None and true is not None
    assert legacy > 0.9  # before: the upper facade is essentially the whole score
    assert true < now < 0.8  # now: lower, towards the physical value, which the fallback still over-states
    assert now - true < 0.6 * (legacy - true)


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
