"""What made a map: one provenance record, shared by every output.

:func:`build_provenance` is the only place the record is assembled; ``summary.json`` stores it
under ``provenance``, the GeoTIFFs carry it flattened as metadata tags
(:func:`flat_tags`: ``DAMAGEMAP_VERSION``, ``MODEL_NAME``, ``ENCODER_FINGERPRINT``, …), the
GeoPackage as dataset metadata, and the report and viewer print it.

The time (``created_utc``) is the run's start, or ``SOURCE_DATE_EPOCH`` (seconds since 1970,
the reproducible-builds convention) when that is set, so two runs can be compared byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timezone
from typing import Any

import rasterio

from damagemap import __version__
from damagemap.geo.raster import gdal_env
from damagemap.geo.sources import SceneSource
from damagemap.mapping.spec import predictor_fingerprint

ACQUISITION_TAGS = ("ACQUISITION_DATE", "ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "DATE_ACQUIRED", "DATETIME")
"""Scene metadata tags read as its acquisition date, in this order (``TIFFTAG_DATETIME`` last,
recorded with ``acquired_from`` so a reader sees it may be the file's creation date)."""


def utc_now() -> str:
    """The run time: ``SOURCE_DATE_EPOCH`` if set, else now (ISO 8601, seconds, UTC)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = datetime.fromtimestamp(int(epoch), tz=timezone.utc) if epoch else datetime.now(timezone.utc)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


def acquisition(source: SceneSource) -> dict[str, str | None]:
    """``{"path", "acquired", "acquired_from"}`` of a scene (date from its metadata tags, if any)."""
    acquired = found = None
    try:
        with gdal_env(source.gdal_path), rasterio.open(source.gdal_path) as src:
            tags = {k.upper(): v for k, v in src.tags().items()}
    except rasterio.errors.RasterioError:
        tags = {}
    for key in (*ACQUISITION_TAGS, "TIFFTAG_DATETIME"):
        if tags.get(key):
            acquired, found = tags[key], key
            break
    return {"path": source.given, "acquired": acquired, "acquired_from": found}


def model_record(predictor: object) -> dict[str, Any]:
    """The predictor's own description (``provenance()`` of a saved model), else its fingerprint.

    (Not its type: a resumed run may use another object with the same fingerprint.)
    """
    describe = getattr(predictor, "provenance", None)
    if callable(describe):
        return dict(describe())
    return {
        "model": {"name": getattr(predictor, "name", None), "fingerprint": predictor_fingerprint(predictor)},
        "precision": getattr(predictor, "precision", "fp32"),
        "device": getattr(predictor, "device", "cpu"),
    }


def model_classes(predictor: object) -> list[str] | None:
    """The predictor's class names (a saved model's manifest ``classes``, or ``class_names``), if any."""
    names = model_record(predictor).get("classes") or getattr(predictor, "class_names", None)
    return [str(n) for n in names] if names else None


def build_provenance(
    predictor: object,
    source: SceneSource,
    pre_source: SceneSource | None,
    *,
    threshold: float,
    tile: int,
    overlap: int,
) -> dict[str, Any]:
    """The provenance record of one mapping run (see module docstring)."""
    record = model_record(predictor)
    return {
        "damagemap_version": __version__,
        "model": record.get("model", {}),
        "encoder": record.get("encoder", {}),
        "recipe": record.get("recipe"),
        "threshold": threshold,
        "tile": tile,
        "overlap": overlap,
        "precision": str(record.get("precision", "fp32")),
        "device": str(record.get("device", "cpu")),
        "scene": acquisition(source),
        "pre_scene": acquisition(pre_source) if pre_source is not None else None,
        "created_utc": utc_now(),
    }


def flat_tags(provenance: dict[str, Any]) -> dict[str, str]:
    """Provenance as ``KEY=value`` metadata tags (nested keys joined by ``_``; empty values dropped)."""
    tags: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}_{k}" if prefix else str(k), v)
        elif value is not None and value != "":
            key = re.sub(r"[^A-Z0-9_]", "_", prefix.upper())
            tags[key] = value if isinstance(value, str) else json.dumps(value)

    walk("", provenance)
    return tags


def manifest_sha256(text: bytes) -> str:
    """sha256 of a model manifest's bytes."""
    return hashlib.sha256(text).hexdigest()
