"""MSNet's cross-scene protocol (docs/methods.md §4): random scene splits, train + evaluate each, mean ± std.

A *scene* is the ``video_id`` of a COCO image. Images without one (an xBD file written by
``damagemap video convert-xbd``, whose images carry their ``tile``) are grouped by xBD event, the
tile name up to its last ``_`` (``joplin-tornado_00000002`` → ``joplin-tornado``), or, asked for,
by tile. Each split draws a random ``test_share`` of the scenes (rounded, at least one, leaving
at least one to train on) for testing and trains on the rest, so no scene is in both; split
``s`` is the ``s``-th permutation drawn from ``numpy.random.default_rng(seed)``, the same for
every recipe. Each recipe is trained on the training scenes (its SRN on their videos, when a
folder of videos named after the scenes is given) and scored on the test scenes with and
without score refinement (:func:`~damagemap.video.evaluate.evaluate_detector`).

Every finished (recipe, split) is stored as ``<out>/splits/<recipe>/<split>.json`` with a hash
of its configuration (:func:`damagemap.protocols.runner.config_hash`), so running the same
experiment again reuses it; ``results.json`` and ``results.md`` are rebuilt each time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from rich.progress import Progress

from damagemap.errors import ConfigError, InputError
from damagemap.io_atomic import write_text_atomic
from damagemap.protocols.runner import config_hash, finished_record, store_record
from damagemap.video.coco import CocoDamageDataset, load_coco
from damagemap.video.config import VideoRecipe
from damagemap.video.evaluate import evaluate_detector
from damagemap.video.model import build_msnet
from damagemap.video.train import train_detector, train_srn_on_videos

SceneKey = Literal["auto", "video_id", "event", "tile"]
METRICS = ("AP", "AP25", "AP50")
VARIANTS = ("raw", "refined")


@dataclass
class SceneSplit:
    """One cross-scene split: scene names and the image ids they hold."""

    name: str
    train_scenes: list[str]
    test_scenes: list[str]
    train_ids: list[int]
    test_ids: list[int]


def image_scenes(images: Sequence[dict[str, Any]], key: SceneKey, path: str | Path) -> tuple[str, dict[int, str]]:
    """The scene of every image under ``key`` (``auto``: ``video_id`` if every image has one, else ``event``).

    Returns the key used and ``{image id: scene}``.

    Raises:
        InputError: there are no images, or some have no value for the key.
    """
    if not images:
        raise InputError(path, "no images")

    def scene(im: dict[str, Any], k: str) -> str | None:
        if k == "video_id":
            return None if im.get("video_id") is None else str(im["video_id"])
        tile = im.get("tile")
        if tile is None:
            return None
        return str(tile) if k == "tile" else str(tile).rsplit("_", 1)[0]

    n = len(images)
    if key == "auto":
        no_video = sum(im.get("video_id") is None for im in images)
        no_tile = sum(im.get("tile") is None for im in images)
        if no_video and no_tile:
            raise InputError(
                path,
                f"{no_video} of {n} images have no video_id and {no_tile} no xBD tile, so their scene is "
                "unknown (--scene auto); give every image a video_id",
            )
        key = "event" if no_video else "video_id"
    missing = sum(scene(im, key) is None for im in images)
    if missing:
        field = "video_id" if key == "video_id" else "xBD tile"
        raise InputError(path, f"{missing} of {n} images have no {field}, so their scene is unknown (--scene {key})")
    return key, {int(im["id"]): str(scene(im, key)) for im in images}


def scene_splits(
    scene_of: dict[int, str], n_splits: int, test_share: float, seed: int, path: str | Path, key: str = "scene"
) -> list[SceneSplit]:
    """``n_splits`` seeded random splits of the scenes into train and test (see the module docstring).

    Raises:
        ConfigError: ``n_splits`` < 1 or ``test_share`` not strictly between 0 and 1.
        InputError: fewer than two scenes.
    """
    if n_splits < 1:
        raise ConfigError(f"--splits must be at least 1, got {n_splits}")
    if not 0 < test_share < 1:
        raise ConfigError(f"--test-share must be between 0 and 1 (exclusive), got {test_share}")
    scenes = sorted(set(scene_of.values()))
    if len(scenes) < 2:
        hint = " (--scene tile splits xBD tiles instead)" if key == "event" else ""
        raise InputError(
            path, f"cross-scene splits need at least 2 scenes, found {len(scenes)} ({key} {', '.join(scenes)}){hint}"
        )
    n_test = min(max(1, math.floor(test_share * len(scenes) + 0.5)), len(scenes) - 1)
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_splits):
        perm = rng.permutation(len(scenes))
        test = sorted(scenes[i] for i in perm[:n_test])
        train = sorted(set(scenes) - set(test))
        out.append(
            SceneSplit(
                f"split{s + 1}",
                train,
                test,
                sorted(i for i, sc in scene_of.items() if sc in train),
                sorted(i for i, sc in scene_of.items() if sc in test),
            )
        )
    return out


def scene_videos(folder: str | Path, scenes: Sequence[str]) -> dict[str, Path]:
    """Videos for SRN training, by scene: ``<folder>/<scene>`` (a folder of frames) or ``<folder>/<scene>.<ext>``.

    Scenes without one are left out.

    Raises:
        InputError: the folder does not exist, or a scene has several candidates.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "--videos folder not found")
    found: dict[str, Path] = {}
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    for s in scenes:
        candidates = [p for p in entries if (p.is_dir() and p.name == s) or (p.is_file() and p.suffix and p.stem == s)]
        if len(candidates) > 1:
            raise InputError(folder, f"scene {s}: several videos ({', '.join(sorted(p.name for p in candidates))})")
        if candidates:
            found[s] = candidates[0]
    return found


def run_split(
    recipe: VideoRecipe,
    data: str | Path,
    split: SceneSplit,
    image_root: str | Path | None = None,
    videos: dict[str, Path] | None = None,
    progress: Progress | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Train ``recipe`` on the split's training scenes and score its test scenes, raw and refined.

    The SRN is trained on the videos of the training scenes (``videos``, by scene) when the
    recipe refines scores; the record says which scenes had none. Runs on ``device``.
    """
    train = CocoDamageDataset(data, recipe.classes, image_root, image_ids=split.train_ids)
    test = CocoDamageDataset(data, recipe.classes, image_root, image_ids=split.test_ids)
    torch.manual_seed(recipe.train.seed)
    model = build_msnet(recipe).to(device)
    history = train_detector(model, train, recipe.train, progress)
    srn: dict[str, Any]
    if recipe.refine.enabled:
        videos = videos or {}
        srn = train_srn_on_videos(
            model, [videos[s] for s in split.train_scenes if s in videos], recipe.srn, recipe.video, recipe.train.seed
        )
        srn["scenes_without_video"] = [s for s in split.train_scenes if s not in videos]
    else:
        srn = {"trained": False, "steps": 0, "problem": "refinement is off in the recipe (refine.enabled: false)"}
    scores = evaluate_detector(model, test, recipe.refine, progress)
    return {
        "scores": {v: scores[v] for v in VARIANTS},
        "refinement": scores["refinement"],
        "srn": srn,
        "final_loss": history[-1]["loss"],
        "n_detections": scores["n_detections"],
    }


def _split_hash(recipe: VideoRecipe, split: SceneSplit, images: dict[int, str], videos: dict[str, Path]) -> str:
    used = {s: [videos[s].name, _size(videos[s])] for s in split.train_scenes if s in videos}
    files = [[i, images[i]] for i in split.train_ids], [[i, images[i]] for i in split.test_ids]
    return config_hash([recipe.model_dump(mode="json"), split.train_scenes, split.test_scenes, files, used])


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


def run_video_experiment(
    recipes: Sequence[VideoRecipe],
    data: str | Path,
    splits: Sequence[SceneSplit],
    out_dir: str | Path,
    image_root: str | Path | None = None,
    videos: dict[str, Path] | None = None,
    progress: Progress | None = None,
    device: torch.device | str = "cpu",
) -> tuple[list[dict[str, Any]], int]:
    """Run every recipe on every split (on ``device``), reusing finished ones.

    Returns the records and how many of them were computed.
    """
    names = [r.name for r in recipes]
    if len(set(names)) != len(names):
        raise ConfigError(f"recipe names must be unique within an experiment, got {names}")
    out_dir, videos = Path(out_dir), videos or {}
    images = {int(im["id"]): str(im["file_name"]) for im in load_coco(data)["images"]}
    records, computed = [], 0
    task = (
        progress.add_task("splits", total=len(recipes) * len(splits), info="", report_each=True) if progress else None
    )
    for recipe in recipes:
        for split in splits:
            path = out_dir / "splits" / recipe.name / f"{split.name}.json"
            chash = _split_hash(recipe, split, images, videos)
            record = finished_record(path, chash)
            if record is None:
                if progress is not None and task is not None:
                    progress.update(task, info=f"{recipe.name} {split.name}")
                started = time.perf_counter()
                record = run_split(recipe, data, split, image_root, videos, progress, device)
                record.update(
                    config_hash=chash,
                    recipe=recipe.name,
                    split=split.name,
                    train_scenes=split.train_scenes,
                    test_scenes=split.test_scenes,
                    n_train=len(split.train_ids),
                    n_test=len(split.test_ids),
                    seconds=round(time.perf_counter() - started, 1),
                )
                store_record(path, record)
                computed += 1
                if progress is not None:
                    for tid in [t for t in progress.task_ids if t != task]:
                        progress.remove_task(tid)
            records.append(record)
            if progress is not None and task is not None:
                progress.update(task, advance=1, info=f"{recipe.name} {split.name} done")
    return records, computed


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per recipe, per ``raw`` / ``refined``, per ``segm`` / ``bbox``: mean, std (ddof 0) and n of AP, AP25, AP50.

    Splits where a metric is undefined (pycocotools' -1: no ground truth) are left out of it.
    """
    out: dict[str, Any] = {}
    for recipe in dict.fromkeys(r["recipe"] for r in records):
        rs = [r for r in records if r["recipe"] == recipe]
        entry: dict[str, Any] = {"splits": len(rs)}
        for variant in VARIANTS:
            entry[variant] = {}
            for kind in ("segm", "bbox"):
                stats = {}
                for m in METRICS:
                    vals = np.array([r["scores"][variant][kind][m] for r in rs], dtype=float)
                    ok = vals[vals >= 0]
                    stats[m] = {
                        "mean": float(ok.mean()) if ok.size else None,
                        "std": float(ok.std()) if ok.size else None,
                        "n": int(ok.size),
                    }
                entry[variant][kind] = stats
        entry["srn_untrained_splits"] = sum(not r["srn"].get("trained") for r in rs)
        entry["test_images"] = sum(r["n_test"] for r in rs)
        entry["test_images_refined"] = sum(r["refinement"]["images_refined"] for r in rs)
        out[recipe] = entry
    return out


def _fmt(s: dict[str, Any]) -> str:
    return "n/a" if s["mean"] is None else f"{s['mean']:.3f} ± {s['std']:.3f}"


def markdown(summary: dict[str, Any], records: Sequence[dict[str, Any]], title: str) -> str:
    """The summary as a Markdown table (mean ± std over splits), the splits and the notes."""
    head = "| recipe | refinement | mask AP | mask AP@0.25 | mask AP@0.5 | box AP | box AP@0.25 | box AP@0.5 | splits |"
    lines = [f"## {title}", "", head, "|---|---|---|---|---|---|---|---|---|"]
    for recipe, e in summary.items():
        for variant, label in (("raw", "without"), ("refined", "with")):
            cells = [_fmt(e[variant][k][m]) for k in ("segm", "bbox") for m in METRICS]
            lines.append(f"| {recipe} | {label} | " + " | ".join(cells) + f" | {e['splits']} |")
    lines += ["", "AP is COCO's 0.50:0.95 average; AP@0.25 and AP@0.5 at one IoU threshold.", ""]
    seen = []
    for r in records:
        if r["split"] not in seen:
            seen.append(r["split"])
            lines.append(f"- {r['split']}: test scenes {', '.join(r['test_scenes'])} ({r['n_test']} images)")
    notes = []
    for recipe, e in summary.items():
        refining = any(r["recipe"] == recipe and r["refinement"]["enabled"] for r in records)
        if refining and e["srn_untrained_splits"]:
            notes.append(
                f"{recipe}: SRN untrained in {e['srn_untrained_splits']} of {e['splits']} splits "
                "(random embeddings; see splits/*.json srn.problem)"
            )
        if refining and e["test_images_refined"] < e["test_images"]:
            notes.append(
                f"{recipe}: {e['test_images'] - e['test_images_refined']} of {e['test_images']} test images "
                "had no adjacent frame and kept their raw scores"
            )
    if notes:
        lines += ["", *(f"Note: {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def write_results(
    summary: dict[str, Any], records: Sequence[dict[str, Any]], out_dir: str | Path, title: str, protocol: dict
) -> None:
    """Write ``results.json`` (protocol, summary, per-split scores) and ``results.md`` atomically."""
    out_dir = Path(out_dir)
    per_split = [
        {
            k: r[k]
            for k in ("recipe", "split", "train_scenes", "test_scenes", "n_train", "n_test", "scores", "refinement")
        }
        | {"srn": {k: r["srn"].get(k) for k in ("trained", "steps", "problem")}}
        for r in records
    ]
    payload = {"title": title, "protocol": protocol, "summary": summary, "splits": per_split}
    write_text_atomic(out_dir / "results.json", json.dumps(payload, indent=2) + "\n")
    write_text_atomic(out_dir / "results.md", markdown(summary, records, title))
