"""Predict damage instances on a flight video, refine scores across frames, map them with GPS."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.progress import Progress

from damagemap.io_atomic import write_text_atomic
from damagemap.video.config import VideoRecipe
from damagemap.video.frames import read_frames, time_span
from damagemap.video.gps import align, read_track
from damagemap.video.heatmap import write_heatmap
from damagemap.video.model import MSNet
from damagemap.video.refine import detect_and_embed, refine_detections

DETECTIONS = "detections.json"


def predict_video(
    model: MSNet,
    recipe: VideoRecipe,
    video: str | Path,
    out_dir: str | Path,
    track: str | Path | None = None,
    every: int | None = None,
    video_start: datetime | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Detect on every ``every``-th frame, refine confidences in [c0, c1] and write outputs.

    Writes ``detections.json`` (per frame: time, lat/lon, boxes, labels, raw and refined
    scores) and, with a GPS ``track``, ``damage_points.gpkg`` + ``heatmap.png``. The track is
    checked against the video's time span before any frame is processed.
    """
    every = every or recipe.video.every
    out_dir = Path(out_dir)
    gps = read_track(track) if track is not None else None
    if gps is not None:
        start, end = time_span(video, recipe.video.folder_fps)
        align(gps, np.linspace(start, end, 101), video_start)  # raises when they do not overlap
    model.eval()
    frames, dets, embeds = [], [], []
    task = progress.add_task("predict frames", total=None, info="") if progress else None
    for frame in read_frames(video, every, recipe.video.folder_fps):
        detections, embeddings = detect_and_embed(model, torch.from_numpy(frame.image), recipe.refine.roi_size)
        frames.append(frame)
        dets.append(detections)
        embeds.append(embeddings)
        if progress is not None and task is not None:
            progress.update(task, advance=1, info=f"t={frame.time:.1f}s {len(detections['scores'])} det")
    if progress is not None and task is not None:
        progress.update(task, total=len(frames))  # the frame count is known now: the task is complete
    raw = [d["scores"] for d in dets]
    cfg = recipe.refine
    refined = refine_detections(dets, embeds, cfg)
    times = np.array([f.time for f in frames])
    where = align(gps, times, video_start) if gps is not None else np.full((len(frames), 2), np.nan)
    records, rows = [], []
    for f, d, r, s, (lat, lon) in zip(frames, dets, raw, refined, where):
        labels = [recipe.classes[int(k) - 1] for k in d["labels"]]
        records.append(
            {
                "frame": f.index,
                "time": f.time,
                "lat": _num(lat),
                "lon": _num(lon),
                "boxes": d["boxes"].tolist(),
                "labels": labels,
                "raw_scores": r.tolist(),
                "scores": s.tolist(),
            }
        )
        rows += [
            {
                "frame": f.index,
                "time": f.time,
                "label": lab,
                "raw_score": float(a),
                "score": float(b),
                "lat": lat,
                "lon": lon,
            }
            for lab, a, b in zip(labels, r, s)
        ]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        out_dir / DETECTIONS,
        json.dumps({"video": str(video), "every": every, "refine": cfg.model_dump(), "frames": records}, indent=1),
    )
    summary: dict[str, Any] = {
        "frames": len(frames),
        "detections": len(rows),
        "refined": int(sum(int((a != b).sum()) for a, b in zip(raw, refined))),
    }
    if gps is not None:
        points = pd.DataFrame(rows, columns=["frame", "time", "label", "raw_score", "score", "lat", "lon"])
        points = points.dropna(subset=["lat", "lon"])
        summary["mapped"] = len(points)
        summary.update({k: str(v) for k, v in write_heatmap(points, where[~np.isnan(where[:, 0])], out_dir).items()})
    return summary


def _num(v: float) -> float | None:
    return None if np.isnan(v) else float(v)
