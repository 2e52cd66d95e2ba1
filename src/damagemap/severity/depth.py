"""Per-pixel depth for the severity score: a monocular depth model, or a flat-ground fallback.

**Depth model** (:class:`DepthModel`): any ``transformers`` ``AutoModelForDepthEstimation``
checkpoint in a local Hugging Face folder (Depth Anything V1/V2, DPT …). These models predict
*relative inverse depth* (disparity, up to an unknown scale and shift) unless their config says
``depth_estimation_type: metric``. We convert disparity x to depth as d = 1 / x, assuming the
shift is zero, and clip x below at ``1e-3 · max(x)`` so sky and far pixels get a finite depth
(at most 1000× the nearest). The unknown global scale cancels in the severity ratio.

**Ground-plane fallback** (:func:`ground_plane_depth`), used when no depth model is given. The
camera is a pinhole at height h above flat ground with a level optical axis; the horizon is image
row v_h. A ground point seen at row v below the horizon lies at depth

    d(v) = f · h / (v − v_h)       (similar triangles; f = focal length in pixels)

with v the pixel-centre row (row index + 0.5) and f = (W / 2) / tan(hfov / 2). Every pixel of a
row gets that row's ground depth — for a wall standing on the ground this over-estimates its
lower part's depth (the ray hits the wall before the ground), a deliberate simplification: depth
then increases monotonically towards the horizon, which is the first-order effect the score needs.

*At and near the horizon* the formula says nothing about the scene. A row at angle θ below
the horizon (tan θ = (v − v_h) / f) gets h / tan θ, which grows without bound as θ → 0, so it is
set by the errors of the model rather than by what the row shows: a camera pitched by ε, or a
street sloping by ε (3° is a 5 % gradient), moves the true horizon by f · tan ε rows, and a row
that close to the assumed horizon may really be at any distance. Rows at or above the horizon
never see the ground at all: they show sky (not structure, unless mis-segmented) and the upper
parts of facades, and a facade stands at the depth of its foot, which the photo shows *below*
the horizon. So every row less than ε = ``horizon_tolerance_deg`` below the horizon, and every
row at or above it, gets the depth of the first row ε below the horizon, the last one whose
ground depth the geometry still determines:

    d_cap = h / tan ε        (30.5 m for the default h = 1.6 m, ε = 3°)

about the facades across a wide street, where street photos of damage mostly look. This is what
keeps the d² weighting of the score (:mod:`damagemap.severity.score`) from letting the upper
rows swamp the photo: with the default geometry (hfov 60°, horizon at mid-height) the bottom row
of a 4:3 landscape photo lies at 3.7 m (2.1 m in a 3:4 portrait), so an upper-row pixel weighs
(30.5 / 3.7)² ≈ 70× (≈ 215×) a bottom-row pixel, where a fixed 100 m for those rows gave
≈ 730× (≈ 2300×) and made any photo's score essentially the state of its upper facades.
``max_depth_m``, if set, lowers the cap further (d_cap = min(h / tan ε, max_depth_m)).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from damagemap.device import module_device
from damagemap.errors import CheckpointError
from damagemap.severity.config import GroundPlaneConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def focal_px(width: int, hfov_deg: float) -> float:
    """Focal length in pixels for an image ``width`` px wide with horizontal FOV ``hfov_deg``."""
    return (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)


def ground_plane_depth(height: int, width: int, cfg: GroundPlaneConfig | None = None) -> np.ndarray:
    """Depth ``[H, W]`` (metres) of a flat ground plane seen by a level camera (module docstring).

    Rows below the horizon get f·h / (v − v_h), capped at :attr:`GroundPlaneConfig.depth_cap_m`;
    rows at or above it get the cap.
    """
    cfg = cfg or GroundPlaneConfig()
    f = focal_px(width, cfg.hfov_deg)
    dv = np.arange(height, dtype=np.float64) + 0.5 - cfg.horizon * height
    with np.errstate(divide="ignore"):
        rows = np.where(dv > 0, f * cfg.camera_height_m / np.where(dv > 0, dv, 1.0), np.inf)
    rows = np.minimum(rows, cfg.depth_cap_m)
    return np.repeat(rows[:, None], width, axis=1)


def ground_plane_source(cfg: GroundPlaneConfig) -> str:
    """How ground-plane depth is described in outputs."""
    return (
        f"ground-plane (horizon {cfg.horizon:g} of height, camera {cfg.camera_height_m:g} m, "
        f"hfov {cfg.hfov_deg:g} deg, cap {cfg.depth_cap_m:.3g} m at/near the horizon)"
    )


@dataclass
class DepthModel:
    """A Hugging Face depth-estimation model loaded from a local folder."""

    model: torch.nn.Module
    path: Path
    metric: bool
    patch: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def source(self) -> str:
        """How depth was obtained, for the outputs."""
        kind = "metric depth" if self.metric else "relative inverse depth → 1/x"
        return f"{type(self.model).__name__} {self.path} ({kind})"

    @classmethod
    def from_pretrained(cls, path: str | Path) -> DepthModel:
        """Load ``config.json`` + weights from a local folder, strictly.

        Raises:
            CheckpointError: not a folder with a depth-estimation config, or weights missing,
                unexpected or of the wrong shape.
        """
        from transformers import AutoConfig, AutoModelForDepthEstimation

        path = Path(path)
        if not (path / "config.json").is_file():
            raise CheckpointError(path, "not a Hugging Face model folder (no config.json)")
        try:
            config = AutoConfig.from_pretrained(path, local_files_only=True)
            model, info = AutoModelForDepthEstimation.from_pretrained(
                path, config=config, local_files_only=True, output_loading_info=True
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(
                path, f"cannot load a depth-estimation model ({str(exc).splitlines()[0][:200]})"
            ) from None
        missing, unexpected = list(info.get("missing_keys", [])), list(info.get("unexpected_keys", []))
        mismatched = [str(m) for m in info.get("mismatched_keys", [])]
        if missing or unexpected or mismatched:
            problem = "weights do not match the config's architecture"
            if mismatched:
                problem += f"; shape mismatches: {', '.join(mismatched[:5])}"
            raise CheckpointError(path, problem, missing, unexpected)
        backbone = getattr(config, "backbone_config", None)
        patch = int(getattr(backbone, "patch_size", None) or getattr(config, "patch_size", 16) or 16)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        pre = path / "preprocessor_config.json"
        if pre.is_file():
            spec = json.loads(pre.read_text())
            mean, std = tuple(spec.get("image_mean", mean)), tuple(spec.get("image_std", std))
        metric = getattr(config, "depth_estimation_type", "relative") == "metric"
        return cls(model.eval(), path, metric, patch, mean, std)

    def to(self, device: torch.device | str) -> DepthModel:
        """Move the depth network to ``device``; returns self."""
        self.model.to(device)
        return self

    @torch.no_grad()
    def predict(self, image: np.ndarray, size: int = 518) -> np.ndarray:
        """Depth ``[H, W]`` (> 0, arbitrary scale for relative models) of a [0, 1] ``[3, H, W]`` image."""
        _, h, w = image.shape
        scale = size / max(h, w)
        th, tw = (max(self.patch, int(round(v * scale / self.patch)) * self.patch) for v in (h, w))
        x = torch.from_numpy(np.ascontiguousarray(image[:3], dtype=np.float32))[None]
        x = F.interpolate(x, size=(th, tw), mode="bicubic", align_corners=False).clamp(0, 1)
        x = (x - torch.tensor(self.mean).view(1, -1, 1, 1)) / torch.tensor(self.std).view(1, -1, 1, 1)
        out = self.model(pixel_values=x.to(module_device(self.model))).predicted_depth.float().cpu()
        out = F.interpolate(out.reshape(1, 1, *out.shape[-2:]), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        pred = out.double().numpy()
        floor = max(float(pred.max()), 1e-12) * 1e-3
        pred = np.maximum(np.nan_to_num(pred, nan=floor), floor)
        return pred if self.metric else 1.0 / pred
