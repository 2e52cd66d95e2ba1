"""Predict masks for individual image files (PNG outputs, written atomically)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import Progress

from damagemap.errors import ConfigError
from damagemap.io_atomic import atomic_path
from damagemap.model import DamageModel
from damagemap.safepath import unique_stems


def _save_png(array: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def predict_files(
    model: DamageModel,
    paths: Sequence[Path],
    out_dir: Path,
    read_image: Callable[[Path], np.ndarray],
    progress: Progress | None = None,
    threshold: float | None = None,
    batch: int = 8,
    pre_paths: Sequence[Path] | None = None,
) -> list[Path]:
    """Write ``<stem>_mask.png`` (class indices) and ``<stem>_prob.png`` for each image.

    The probability PNG holds the damage probability ×255 for binary models and the maximum
    class probability ×255 for multi-class models. Every input is read (and validated) before
    anything is written, so a bad file leaves no partial output.

    Args:
        threshold: binary models: damage probability threshold of the masks (default: the model's).
        batch: model inputs (tiles, or resized images) per model call, across images.
        pre_paths: pair models: the pre-event image of each of ``paths``, in the same order.
    """
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be in [0, 1], got {threshold}")
    if pre_paths is not None and len(pre_paths) != len(paths):
        raise ConfigError(f"--pre: give one pre-event image per image ({len(paths)}), got {len(pre_paths)}")
    model.check_pre(pre_paths is not None, str(paths[0]) if paths else "predict")
    images = [(Path(p), read_image(p)) for p in paths]
    pres = None if pre_paths is None else [read_image(p) for p in pre_paths]
    for path, image in images:  # validate every input first; predict_proba selects the bands itself
        model.check_bands(image, str(path))
    for pre_path, pre in zip(pre_paths or [], pres or []):
        model.check_bands(pre, str(pre_path))
    names = unique_stems([p for p, _ in images])
    out_dir.mkdir(parents=True, exist_ok=True)
    task = progress.add_task("predict", total=len(images), info="") if progress else None
    written = []
    for start in range(0, len(images), batch):
        group = images[start : start + batch]
        group_pre = None if pres is None else pres[start : start + batch]
        probas = model.predict_proba_many(
            [image for _, image in group], [str(path) for path, _ in group], batch, group_pre
        )
        for name, proba in zip(names[start : start + batch], probas, strict=True):
            labels = model.labels_from_proba(proba, threshold)
            prob = proba[0] if model.recipe.binary else proba.max(0)
            _save_png(labels, out_dir / f"{name}_mask.png")
            _save_png(np.round(prob * 255).astype(np.uint8), out_dir / f"{name}_prob.png")
            written.append(out_dir / f"{name}_mask.png")
        if progress is not None and task is not None:
            progress.advance(task, len(group))
    return written
