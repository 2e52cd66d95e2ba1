"""Score a folder of street photos: per-photo table, overlays, and a map of scored points.

For every file in the folder (sorted; hidden files skipped): read it (EXIF orientation
applied), segment it with the model, get depth (a depth model if given, else the ground-plane
fallback), compute :func:`~damagemap.severity.score.severity_score`, write an overlay PNG.
A file that is not a readable image does not stop the batch: it gets a row with
``status = error`` and the reason, is left out of the map, and :attr:`BatchResult.n_errors`
makes the CLI exit non-zero. Photos without EXIF GPS are scored and listed, with empty
``lat``/``lon``, and are absent from the map layers.

Outputs in ``out_dir`` (each written under a temporary name and renamed when complete):
``scores.csv``, ``scores.json``, ``overlays/<stem>.png``, ``severity.gpkg`` (layer ``photos``
and ``cells`` or ``zones``), ``photos.geojson`` and ``cells.geojson`` / ``zones.geojson``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import Progress

from damagemap.errors import ConfigError, InputError
from damagemap.io_atomic import atomic_path, write_text_atomic
from damagemap.model import DamageModel
from damagemap.safepath import unique_stems
from damagemap.severity.config import SeverityConfig
from damagemap.severity.depth import DepthModel, ground_plane_depth, ground_plane_source
from damagemap.severity.exif import read_photo
from damagemap.severity.geo import (
    grid_aggregate,
    points_frame,
    write_geojson,
    write_layers,
    zone_aggregate,
)
from damagemap.severity.overlay import overlay, save_png
from damagemap.severity.score import UNDEFINED, severity_score


@dataclass
class BatchResult:
    """What :func:`score_folder` did: one row per file, and the files it wrote."""

    rows: list[dict] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    @property
    def n_errors(self) -> int:
        """Photos that could not be scored."""
        return sum(r["status"] != "ok" for r in self.rows)


def severity_config(model: DamageModel, degrees: Mapping[str, float] | None = None) -> SeverityConfig:
    """The model recipe's ``severity`` section (defaults if absent), with ``degrees`` overriding.

    Raises:
        ConfigError: the degree table names classes the model does not predict.
    """
    cfg = model.recipe.severity or SeverityConfig()
    if degrees:
        cfg = cfg.model_copy(update={"degrees": SeverityConfig(degrees=dict(degrees)).degrees})
    classes = model.recipe.classes
    unknown = sorted(set(cfg.degrees) - set(classes))
    if unknown:
        raise ConfigError(
            f"severity degrees name {unknown}, which the model does not predict (classes "
            f"{classes}); pass --degrees CLASS=WEIGHT,… for this model's classes"
        )
    return cfg


def _photo_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(folder, "photo folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(folder, "no files in the photo folder")
    return files


def _row(path: Path, classes: list[str], cfg: SeverityConfig) -> dict:
    row = {
        "photo": path.name,
        "status": "ok",
        "error": "",
        "score": None,
        "band": UNDEFINED,
        "pixel_score": None,
        "pixel_band": UNDEFINED,
        "structure_fraction": None,
    }
    row |= {f"share_{c}": None for c in cfg.degrees}
    row |= {f"pixel_share_{c}": None for c in classes}
    return row | {"depth_source": "", "lat": None, "lon": None}


def score_photo(
    model: DamageModel, image: np.ndarray, cfg: SeverityConfig, depth_model: DepthModel | None, where: str = "photo"
):
    """Class map and :class:`SeverityScore` of one ``[3, H, W]`` photo."""
    labels = model.labels_from_proba(model.predict_proba(image, where))
    if depth_model is not None:
        depth, source = depth_model.predict(image, cfg.depth_size), depth_model.source
    else:
        height, width = labels.shape
        depth, source = ground_plane_depth(height, width, cfg.ground), ground_plane_source(cfg.ground)
    score = severity_score(labels, depth, model.recipe.classes, cfg.degrees, cfg.bands, source)
    return labels, score


def score_folder(
    model: DamageModel,
    photos: str | Path,
    out_dir: str | Path,
    *,
    depth_model: DepthModel | None = None,
    degrees: Mapping[str, float] | None = None,
    grid_m: float | None = None,
    zones: str | Path | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Score every photo in ``photos`` and write the outputs (module docstring) to ``out_dir``."""
    if grid_m and zones:
        raise ConfigError("give either a grid size or zones, not both")
    cfg = severity_config(model, degrees)
    files = _photo_files(Path(photos))
    out = Path(out_dir)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    classes = list(model.recipe.classes)
    result = BatchResult()
    task = progress.add_task("score photos", total=len(files), info="") if progress else None
    for path, name in zip(files, unique_stems(files), strict=True):
        row = _row(path, classes, cfg)
        try:
            image, gps = read_photo(path)
            model.check_bands(image, str(path))
        except InputError as exc:
            row.update(status="error", error=exc.problem)
        else:
            labels, s = score_photo(model, image, cfg, depth_model, str(path))
            row.update(
                score=s.score,
                band=s.band,
                pixel_score=s.pixel_score,
                pixel_band=s.pixel_band,
                structure_fraction=s.structure_fraction,
                depth_source=s.depth_source,
            )
            row |= {f"share_{c}": v for c, v in s.area_shares.items()} if s.score is not None else {}
            row |= {f"pixel_share_{c}": v for c, v in s.pixel_shares.items()}
            if gps is not None:
                row["lat"], row["lon"] = gps
            png = out / "overlays" / f"{name}.png"
            save_png(overlay(image, labels, classes), png)
            result.written.append(png)
        result.rows.append(row)
        if progress is not None and task is not None:
            progress.advance(task)
    result.written += _write_tables(result.rows, out)
    result.written += _write_map(result.rows, out, grid_m, zones)
    return result


def _write_tables(rows: list[dict], out: Path) -> list[Path]:
    with atomic_path(out / "scores.csv") as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([{k: "" if v is None else v for k, v in r.items()} for r in rows])
    write_text_atomic(out / "scores.json", json.dumps({"photos": rows}, indent=1, default=float) + "\n")
    return [out / "scores.csv", out / "scores.json"]


def _write_map(rows: list[dict], out: Path, grid_m: float | None, zones: str | Path | None) -> list[Path]:
    points = points_frame([r for r in rows if r["status"] == "ok"])
    if points.empty:
        return []
    layers = {"photos": points}
    if zones:
        layers["zones"] = zone_aggregate(points, zones)
    elif grid_m:
        layers["cells"] = grid_aggregate(points, grid_m)
    write_layers(out / "severity.gpkg", layers)
    written = [out / "severity.gpkg"]
    for name, frame in layers.items():
        write_geojson(out / f"{name}.geojson", frame)
        written.append(out / f"{name}.geojson")
    return written
