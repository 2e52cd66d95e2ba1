"""MSNet model artifact: a directory with ``manifest.json`` and ``model.safetensors``.

Same contract as the core artifact (``damagemap.artifact``): nothing is unpickled, the
directory is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from damagemap import __version__
from damagemap.artifact import (
    MANIFEST,
    SCHEMA_VERSION,
    load_module_weights,
    read_manifest,
    verify_files,
    write_model_dir,
)
from damagemap.video.config import VideoRecipe
from damagemap.video.model import MSNet, build_msnet

KIND = "msnet"
WEIGHTS = "model.safetensors"


def save_video_model(
    model: MSNet, recipe: VideoRecipe, out_dir: str | Path, metrics: dict[str, Any] | None = None
) -> Path:
    """Write the artifact atomically (temporary sibling directory, then rename)."""
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "damagemap_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "classes": recipe.classes,
        "rpn": recipe.model.rpn,
        "metrics": metrics or {},
        "recipe": recipe.model_dump(mode="json"),
    }

    def write(tmp: Path) -> None:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    return write_model_dir(out_dir, write)


def load_video_model(model_dir: str | Path) -> tuple[MSNet, VideoRecipe, dict[str, Any]]:
    """Rebuild the network from the manifest's recipe and load its weights (eval mode).

    The backbone checkpoint is not needed: all weights, backbone included, are in the artifact.
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir, KIND, "video model")
    recipe = VideoRecipe.model_validate(manifest["recipe"])
    recipe.model.backbone_checkpoint = None
    # the saved weights decide the norm layers: a model trained from a checkpoint has frozen BN
    frozen = manifest["recipe"]["model"].get("backbone_checkpoint") is not None
    model = build_msnet(recipe, frozen_bn=frozen)
    verify_files(model_dir, manifest, (WEIGHTS,))
    load_module_weights(model, model_dir / WEIGHTS, "network")
    return model.eval(), recipe, manifest
