"""MSNet recipes: their own YAML schema (pydantic, unknown keys are errors).

The core :class:`damagemap.recipe.Recipe` describes frozen-encoder segmentation; an instance
segmentation detector shares none of its sections, so ``recipes/video/msnet.yaml`` and
``recipes/video/maskrcnn_baseline.yaml`` (marked ``schema: video``) use this schema and :func:`load_video_recipe`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from damagemap.config import StrictModel, apply_overrides, read_yaml_mapping, validate
from damagemap.safepath import check_name

CLASSES = ["Slight", "Severe", "Debris"]


class ModelConfig(StrictModel):
    """Mask R-CNN ResNet-50-FPN and the hierarchical RPN.

    ``rpn: hierarchical`` is MSNet (a building RPN gates the damage RPN's anchors); ``single``
    is plain Mask R-CNN. A damage anchor is kept when its ``gate`` score against the top
    ``gate_proposals`` building proposals is strictly greater than ``gate_threshold``:
    ``ii`` = max_p |a∩p|/|a| (inner intersection), ``iou`` = max_p IoU(a, p). With
    ``gate_add_gt`` the ground-truth building boxes are added to the building proposals while
    training (as torchvision adds ground-truth boxes to the RoI-head proposals), so damage
    anchors are not all gated out while the building RPN is still untrained.
    """

    rpn: Literal["hierarchical", "single"] = "hierarchical"
    gate: Literal["ii", "iou"] = "ii"
    gate_threshold: float = Field(0.3, ge=0, lt=1)
    gate_proposals: int = Field(300, ge=1)
    gate_add_gt: bool = True
    backbone_checkpoint: str | None = None
    trainable_backbone_layers: int = Field(3, ge=0, le=5)
    min_size: int = Field(800, ge=32)
    max_size: int = Field(1333, ge=32)
    anchor_sizes: list[int] = Field(default_factory=lambda: [32, 64, 128, 256, 512], min_length=5, max_length=5)
    rpn_pre_nms_top_n_train: int = Field(2000, ge=1)
    rpn_pre_nms_top_n_test: int = Field(1000, ge=1)
    rpn_post_nms_top_n_train: int = Field(2000, ge=1)
    rpn_post_nms_top_n_test: int = Field(1000, ge=1)
    rpn_batch_size_per_image: int = Field(256, ge=1)
    box_batch_size_per_image: int = Field(512, ge=1)
    box_score_thresh: float = Field(0.05, ge=0, lt=1)
    box_detections_per_img: int = Field(100, ge=1)


class TrainConfig(StrictModel):
    """Detector optimisation (SGD with momentum, linear warm-up, random horizontal flips)."""

    iterations: int = Field(200, ge=1)
    batch_size: int = Field(2, ge=1)
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    warmup: int = Field(20, ge=0)
    grad_clip: float | None = 10.0
    hflip: bool = True
    seed: int = 42


class SRNConfig(StrictModel):
    """Score Refinement Network: per-location 3-layer MLP on P2–P5 and its triplet training.

    Triplets come from video frames: positive within ``positive_s`` seconds of the anchor
    frame, negative at least ``negative_s`` seconds away; loss margin ``margin``; one Adam
    step per triplet, ``iterations`` triplets per video.

    Frame sampling for SRN training: each video is decoded with stride
    ``k = max(1, floor(fps · positive_s / 2))`` (fps = the video stream's rate; a folder of
    frames is at ``video.folder_fps``), so sampled frames are at most ``positive_s / 2`` apart
    whenever the source has frames that close: 30 fps and 0.5 s give every 7th frame, 0.23 s
    apart. ``video.every`` (prediction) is not used for this. When the frames admit no
    positive pair (e.g. a folder of frames at 1 fps) or no negative (shorter than
    ``negative_s``), ``damagemap video train`` says so on stderr and records it in the
    model's ``metrics.srn`` instead of training; the SRN then stays random.
    """

    hidden: int = Field(256, ge=1)
    channels: int = Field(128, ge=1)
    margin: float = Field(1.0, ge=0)
    positive_s: float = Field(0.5, gt=0)
    negative_s: float = Field(10.0, gt=0)
    iterations: int = Field(100, ge=0)
    lr: float = Field(1e-3, gt=0)

    @model_validator(mode="after")
    def _gap(self) -> SRNConfig:
        if self.negative_s <= self.positive_s:
            raise ValueError("negative_s must be larger than positive_s")
        return self


class RefineConfig(StrictModel):
    """Inference-time refinement of confidences across adjacent frames (docs/methods.md §4).

    Each detection whose confidence lies in [``c0``, ``c1``] is paired with the most similar
    detection of the adjacent frame (cosine similarity of ``roi_size``×``roi_size`` RoIAlign'ed
    SRN embeddings) and both confidences become the pair's mean, the partner's whatever its
    own confidence (as in the paper). Defaults 0.3 / 0.7 (C0, C1 are open in the paper): only
    uncertain detections start a pair; a confident detection or a clear rejection changes only
    as the best match of an uncertain one. ``same_label: true`` restricts matches to
    detections of the same class, a deviation from the paper (off by default).
    """

    enabled: bool = True
    c0: float = Field(0.3, ge=0, le=1)
    c1: float = Field(0.7, ge=0, le=1)
    roi_size: int = Field(7, ge=1)
    same_label: bool = False

    @model_validator(mode="after")
    def _order(self) -> RefineConfig:
        if self.c0 > self.c1:
            raise ValueError(f"c0 ({self.c0}) must not exceed c1 ({self.c1})")
        return self


class VideoInputConfig(StrictModel):
    """Video input: prediction uses every ``every``-th decoded frame (SRN training picks its own stride)."""

    every: int = Field(10, ge=1)
    folder_fps: float = Field(1.0, gt=0)
    """Frame rate assumed for a folder of frames (timestamps = index / folder_fps)."""


class VideoRecipe(StrictModel):
    """A complete MSNet / Mask R-CNN recipe (see ``recipes/video/msnet.yaml``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["video"] = Field("video", alias="schema")
    """Marks the file as a video recipe (``recipes/video/*.yaml``), so loaders can tell."""
    name: str
    description: str = ""
    classes: list[str] = Field(default_factory=lambda: list(CLASSES), min_length=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    srn: SRNConfig = Field(default_factory=SRNConfig)
    refine: RefineConfig = Field(default_factory=RefineConfig)
    video: VideoInputConfig = Field(default_factory=VideoInputConfig)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        return check_name(v, "name")  # experiment folders are named after it


def load_video_recipe(path: str | Path) -> VideoRecipe:
    """Read and validate an MSNet recipe YAML file; errors name the file and the keys."""
    return validate(VideoRecipe, read_yaml_mapping(path, "video recipe"), str(path), "video recipe")


def apply_video_overrides(recipe: VideoRecipe, overrides: list[str] | None) -> VideoRecipe:
    """Apply ``section.key=value`` overrides (values parsed as YAML) and re-validate."""
    return apply_overrides(recipe, overrides, "video recipe")
