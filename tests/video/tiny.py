"""A small, fast MSNet recipe for tests (128 px, few proposals and detections)."""

from __future__ import annotations

from damagemap.video.config import VideoRecipe

TINY_MODEL = {
    "min_size": 128,
    "max_size": 128,
    "anchor_sizes": [8, 16, 32, 64, 128],
    "rpn_pre_nms_top_n_train": 200,
    "rpn_post_nms_top_n_train": 100,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 50,
    "rpn_batch_size_per_image": 64,
    "box_batch_size_per_image": 32,
    "box_detections_per_img": 8,
    "gate_proposals": 50,
}


def tiny_recipe(**model) -> VideoRecipe:
    """The tiny recipe; keyword arguments override ``model`` settings."""
    return VideoRecipe.model_validate(
        {"name": "tiny", "model": TINY_MODEL | model, "srn": {"hidden": 16, "channels": 8}, "video": {"every": 1}}
    )
