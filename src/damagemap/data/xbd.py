"""Reader for xBD / xView2 tiles in the original layout.

Layout: ``<root>/images/<tile>_{pre,post}_disaster.png`` and
``<root>/labels/<tile>_post_disaster.json``. Building polygons are WKT in pixel coordinates
(``features.xy``) with ``properties.subtype`` giving the damage grade.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from damagemap.data.io import read_image
from damagemap.errors import InputError
from damagemap.types import IGNORE_INDEX, Sample

DAMAGE_GRADES = {
    "no-damage": 1,
    "minor-damage": 2,
    "major-damage": 3,
    "destroyed": 4,
    "un-classified": IGNORE_INDEX,
}
"""xBD subtype → class index of the ``"grades"`` mask (0 is background)."""

DamageMode = Literal["grades", "binary-major", "binary-minor"]

_DAMAGED_FROM = {"binary-major": 3, "binary-minor": 2}
_TILE = re.compile(r"^(?P<event>.+)_(?P<number>\d+)$")
_POST = "_post_disaster"


def read_xbd(
    root: str | Path,
    *,
    use_pre: bool = False,
    damage: DamageMode = "grades",
    domains: Sequence[str] | None = None,
) -> list[Sample]:
    """Read xBD tiles with rasterised damage masks.

    Args:
        root: folder with ``images/`` and ``labels/``.
        use_pre: also read the pre-disaster image (``Sample.pre``, for pair recipes).
        damage: ``"grades"`` gives 0 background, 1 no-damage, 2 minor, 3 major, 4 destroyed;
            ``"binary-major"`` gives 1 for major + destroyed and ``"binary-minor"`` 1 for minor
            and above, 0 otherwise (including background). Un-classified buildings are 255.
        domains: disaster events to read (e.g. ``["joplin-tornado"]``; default: all).

    Returns:
        One sample per post-disaster label file, sorted by tile name; ``domain`` is the event,
        ``id`` the tile name, ``buildings`` a uint8 footprint mask (all buildings),
        ``building_ids`` their instance raster (see :func:`rasterize_instances`), and
        ``meta`` holds ``n_buildings``, ``buildings_info`` (see :func:`read_xbd_buildings`)
        and the source paths.

    Raises:
        InputError: folders or images are missing, or a label file is malformed.
    """
    if damage not in ("grades", *_DAMAGED_FROM):
        raise ValueError(f"damage must be 'grades', 'binary-major' or 'binary-minor', got {damage!r}")
    root = Path(root)
    labels_dir = root / "labels"
    if not labels_dir.is_dir():
        raise InputError(labels_dir, f"xBD labels folder not found (expected <root>/labels/*{_POST}.json)")
    label_files = sorted(labels_dir.glob(f"*{_POST}.json"))
    if not label_files:
        raise InputError(labels_dir, f"no label files found in folder (expected *{_POST}.json)")
    samples = []
    for label_path in label_files:
        tile = label_path.stem[: -len(_POST)]
        event = _event_of(tile, label_path)
        if domains is None or event in domains:
            samples.append(_read_tile(root, tile, event, label_path, use_pre, damage))
    if domains is not None and not samples:
        raise InputError(labels_dir, f"no tiles found for events {list(domains)}")
    return samples


def read_xbd_buildings(label_path: str | Path) -> list[dict[str, Any]]:
    """Parse the building polygons of an xBD post-disaster label file.

    Returns:
        One dict per building, in file order, with ``uid``, ``subtype``, ``grade`` (class index
        from :data:`DAMAGE_GRADES`) and ``polygon`` (a shapely geometry in pixel coordinates).

    Raises:
        InputError: the file is not valid JSON, lacks ``features.xy``, or a feature has an
            invalid WKT or an unknown subtype (the message names the feature uid).
    """
    label_path = Path(label_path)
    return _parse_buildings(_load_label(label_path), label_path)


def _load_label(label_path: Path) -> dict[str, Any]:
    """Load an xBD label file, checking that it has ``features.xy``."""
    try:
        doc = json.loads(label_path.read_text())
        if not isinstance(doc["features"]["xy"], list):
            raise TypeError("features.xy is not a list")
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        problem = f"cannot read xBD label file ({type(err).__name__}: {err})"
        raise InputError(label_path, problem) from err
    return doc


def _parse_buildings(doc: dict[str, Any], label_path: Path) -> list[dict[str, Any]]:
    """Building dicts of a loaded label file (see :func:`read_xbd_buildings`)."""
    buildings = []
    for i, feature in enumerate(doc["features"]["xy"]):
        props = feature.get("properties", {})
        uid = props.get("uid", f"#{i}")
        subtype = props.get("subtype")
        if subtype not in DAMAGE_GRADES:
            raise InputError(
                label_path,
                f"feature {uid}: subtype {subtype!r} is not one of {list(DAMAGE_GRADES)} "
                "(is this a pre-disaster label file?)",
            )
        try:
            polygon = shapely.from_wkt(feature["wkt"])
        except (KeyError, TypeError, shapely.errors.ShapelyError) as err:
            raise InputError(label_path, f"feature {uid}: invalid WKT polygon ({err})") from err
        if polygon is None or polygon.is_empty:
            continue
        buildings.append({"uid": uid, "subtype": subtype, "grade": DAMAGE_GRADES[subtype], "polygon": polygon})
    return buildings


def rasterize_shapes(
    shapes: Iterable[tuple[BaseGeometry, int]], shape: tuple[int, int], dtype: str = "uint8"
) -> np.ndarray:
    """Burn ``(geometry, value)`` pairs given in pixel coordinates into a ``shape`` raster.

    Later shapes overwrite earlier ones; pixels whose centre is outside every shape are 0.
    """
    from affine import Affine
    from rasterio.features import rasterize

    shapes = list(shapes)
    if not shapes:
        return np.zeros(shape, dtype=dtype)
    return rasterize(shapes, out_shape=shape, transform=Affine.identity(), fill=0, dtype=dtype)


def rasterize_instances(buildings: Sequence[dict[str, Any]], shape: tuple[int, int]) -> np.ndarray:
    """Int32 instance raster: building ``i`` (0-based, list order) is drawn with id ``i + 1``."""
    shapes = ((b["polygon"], i + 1) for i, b in enumerate(buildings))
    return rasterize_shapes(shapes, shape, dtype="int32")


def damage_lut(damage: DamageMode) -> np.ndarray:
    """Lookup table mapping ``"grades"`` mask values to the values of mask mode ``damage``."""
    lut = np.arange(256, dtype=np.int64)
    if damage in _DAMAGED_FROM:
        lut[:5] = 0
        lut[_DAMAGED_FROM[damage] : 5] = 1
    return lut


def _read_tile(root: Path, tile: str, event: str, label_path: Path, use_pre: bool, damage: DamageMode) -> Sample:
    """Read one tile: image(s), polygons, and the rasterised masks."""
    post_path = root / "images" / f"{tile}{_POST}.png"
    pre_path = root / "images" / f"{tile}_pre_disaster.png"
    for path in (post_path, pre_path) if use_pre else (post_path,):
        if not path.is_file():
            raise InputError(label_path, f"image for this label file not found: {path}")
    image = read_image(post_path)
    pre = None
    if use_pre:
        pre = read_image(pre_path)
        if pre.shape != image.shape:
            problem = f"pre image shape {pre.shape} != post image {post_path} shape {image.shape}"
            raise InputError(pre_path, problem)
    doc = _load_label(label_path)
    _check_size(doc, label_path, image.shape[1:])
    buildings = _parse_buildings(doc, label_path)
    grades = rasterize_shapes(((b["polygon"], b["grade"]) for b in buildings), image.shape[1:])
    meta = {
        "n_buildings": len(buildings),
        "buildings_info": buildings,
        "image_path": str(post_path),
        "label_path": str(label_path),
    }
    if use_pre:
        meta["pre_image_path"] = str(pre_path)
    return Sample(
        image=image,
        mask=damage_lut(damage)[grades],
        domain=event,
        id=tile,
        buildings=(grades != 0).astype(np.uint8),
        building_ids=rasterize_instances(buildings, image.shape[1:]),
        meta=meta,
        pre=pre,
    )


def _event_of(tile: str, label_path: Path) -> str:
    """Disaster event of a tile name such as ``joplin-tornado_00000000``."""
    match = _TILE.match(tile)
    if match is None:
        raise InputError(label_path, f"tile name {tile!r} does not look like <event>_<number>")
    return match["event"]


def _check_size(doc: dict[str, Any], label_path: Path, shape: tuple[int, int]) -> None:
    """The label metadata's width/height, when present, must match the image."""
    meta = doc.get("metadata") or {}
    width, height = meta.get("width"), meta.get("height")
    if width is not None and height is not None and (int(height), int(width)) != tuple(shape):
        raise InputError(
            label_path,
            f"metadata says {height}x{width} (HxW) but the image is {shape[0]}x{shape[1]}",
        )
