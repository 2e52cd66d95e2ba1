"""A single self-contained ``report.html`` for a mapped scene (images embedded as base64 PNG).

Sections: the scene with the damage-probability overlay, the class map and the uncertainty
map (:mod:`damagemap.report.figures`), the mapping statistics (``summary.json``), per-building
counts by class and status (``buildings.csv``), the zonal statistics table (``zones.csv``) and,
if given, training / evaluation metrics. The page is written under a temporary name and renamed
when complete.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd
from pyproj import CRS
from rasterio.transform import Affine

from damagemap.geo.sources import SceneLike, resolve_scene
from damagemap.io_atomic import write_text_atomic
from damagemap.mapping import MappingResult
from damagemap.mapping.classes import ClassLegend, class_legend
from damagemap.mapping.provenance import flat_tags
from damagemap.report.cartography import corners
from damagemap.report.figures import buildings_zones_map, class_map, probability_overlay, uncertainty_map

REPORT_NAME = "report.html"
MAX_ZONE_ROWS = 500

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.maps{display:flex;flex-wrap:wrap;gap:1em}.maps figure{margin:0}.maps img{max-width:100%}
.note{color:#666;font-size:.85em}
@media print{body{margin:0;max-width:none;font-size:10pt}.maps figure{break-inside:avoid;width:48%}
h2{break-after:avoid}table{break-inside:auto}tr{break-inside:avoid}details>*{display:block}}
"""


def write_html_report(
    out_dir: str | os.PathLike,
    mapping_result: MappingResult,
    scene_path: SceneLike,
    title: str,
    metrics: Mapping[str, Any] | None = None,
    *,
    max_size: int = 900,
    suggestions: str | os.PathLike | None = None,
) -> Path:
    """Write ``out_dir/report.html`` and return its path.

    Args:
        out_dir: folder for the report (created).
        mapping_result: what :func:`damagemap.mapping.map_scene` returned.
        scene_path: the mapped scene (for the quicklook): as given to ``map_scene`` (path, URL,
            ``/vsi…`` path, STAC item or :class:`~damagemap.geo.sources.SceneSource`).
        title: page title.
        metrics: optional sections ``{name: {key: value}}`` (or flat ``{key: value}``), e.g.
            training and evaluation scores.
        max_size: longest side of the map images in pixels (rasters are read at overview level).
        suggestions: a ``damagemap suggest`` GeoPackage: its tiles are drawn and listed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r = mapping_result
    summary = json.loads(Path(r.summary).read_text())
    source = resolve_scene(scene_path)
    legend = legend_of(summary)
    suggested = Path(suggestions) if suggestions is not None and Path(suggestions).is_file() else None
    parts = [f"<h1>{escape(title)}</h1>", _scene_line(summary, source.name), _corners(summary)]
    parts.append("<h2>Maps</h2><div class='maps'>")
    for caption, png in (
        (
            "Damage probability over the scene (bright = likely damaged)",
            probability_overlay(source, r.probability, max_size),
        ),
        ("Damage class", class_map(r.damage_class, max_size, legend)),
        ("Uncertainty (bright = the model is unsure: check on the ground)", uncertainty_map(r.uncertainty, max_size)),
        (
            "Buildings by damage class over zones shaded by their share of damaged pixels",
            buildings_zones_map(source, r.damage_class, r.vectors, legend, max_size, suggested),
        ),
    ):
        parts.append(_image(png, caption))
    parts.append("</div>")
    parts.append("<h2>Mapping statistics</h2>")
    parts.append(_key_values({**summary.get("stats", {}), **_timing(r.stats)}))
    parts.append("<details><summary>parameters</summary>" + _key_values(summary.get("parameters", {})) + "</details>")
    if r.buildings_csv is not None and Path(r.buildings_csv).is_file():
        parts.append("<h2>Buildings</h2>" + _building_summary(pd.read_csv(r.buildings_csv), legend))
    if r.zones_csv is not None and Path(r.zones_csv).is_file():
        parts.append("<h2>Zonal statistics</h2>" + _zones(pd.read_csv(r.zones_csv)))
    if suggested is not None:
        parts.append("<h2>Tiles to label next</h2>" + _suggestions(suggested))
    if metrics:
        parts.append("<h2>Training and evaluation</h2>" + _metrics(metrics))
    parts.append("<h2>Provenance</h2>" + _key_values(flat_tags(summary.get("provenance", {}))))
    outputs = ", ".join(escape(name) for name in summary.get("outputs", []))
    parts.append(f"<p class='note'>Outputs in {escape(str(r.out_dir))}: {outputs}</p>")
    page = (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    return write_text_atomic(out / REPORT_NAME, page)


def _image(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f"<figure><img alt='{escape(caption)}' src='data:image/png;base64,{data}'>"
        f"<figcaption class='note'>{escape(caption)}</figcaption></figure>"
    )


def _scene_line(summary: Mapping[str, Any], scene_path: str) -> str:
    sc = summary.get("scene", {})
    t = sc.get("transform", [float("nan")] * 6)
    return (
        f"<p>Scene <code>{escape(str(scene_path))}</code>: {sc.get('width')} × {sc.get('height')} px, "
        f"CRS {escape(str(sc.get('crs')))}, pixel {_fmt(abs(t[0]))} × {_fmt(abs(t[4]))}</p>"
    )


def _timing(stats: Mapping[str, Any]) -> dict[str, Any]:
    return {k: stats[k] for k in ("tiles", "tiles_predicted", "tiles_nodata", "workers", "seconds") if k in stats}


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return escape(str(v))
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 1 else f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        return escape(", ".join(str(x) for x in v[:12]) + (" …" if len(v) > 12 else ""))
    if isinstance(v, Mapping):
        return escape(json.dumps(v, default=str)[:200])
    return escape(str(v))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _key_values(d: Mapping[str, Any]) -> str:
    return _table(["", "value"], [(k.replace("_", " "), v) for k, v in d.items()])


def _metrics(metrics: Mapping[str, Any]) -> str:
    flat = {k: v for k, v in metrics.items() if not isinstance(v, Mapping)}
    parts = [_key_values(flat)] if flat else []
    for name, section in metrics.items():
        if isinstance(section, Mapping):
            parts.append(f"<h3>{escape(str(name))}</h3>" + _key_values(section))
    return "\n".join(parts)


def _corners(summary: Mapping[str, Any]) -> str:
    sc = summary.get("scene", {})
    if "transform" not in sc or not sc.get("crs"):
        return ""
    rows = corners(Affine(*sc["transform"]), CRS.from_user_input(sc["crs"]), sc["width"], sc["height"])
    cells = [(name, f"{x:.2f}", f"{y:.2f}", f"{lat:.6f}", f"{lon:.6f}") for name, x, y, lat, lon in rows]
    return "<p class='note'>Scene corners</p>" + _table(
        ["corner", "x (scene CRS)", "y (scene CRS)", "lat", "lon"], cells
    )


def _suggestions(path: Path) -> str:
    import pyogrio

    df = pyogrio.read_dataframe(path, read_geometry=False)
    cols = [c for c in ("rank", "score", "uncertainty", "distance") if c in df.columns]
    rows = [[_native(v) for v in row] for row in df[cols].head(50).itertuples(index=False)]
    return _table(cols, rows) + f"<p class='note'>Outlined in cyan on the buildings map; file {escape(str(path))}.</p>"


def _building_summary(df: pd.DataFrame, legend: ClassLegend) -> str:
    by_class = df["damage_class"].value_counts().sort_index()
    rows = [
        (f"{legend.name(int(c))} ({int(c)})", int(n), int(n) / max(len(df), 1))
        for c, n in zip(by_class.index, by_class)  # index: damage classes (items() types them Hashable)
    ]
    rows.append(("total", len(df), 1.0 if len(df) else float("nan")))
    by_status = [(s, int(n)) for s, n in df["status"].value_counts().items()]
    return (
        _table(["class", "buildings", "share"], rows)
        + _table(["status", "buildings"], by_status)
        + "<p class='note'>Per-building rows: buildings.csv and the <code>buildings</code> layer of damage.gpkg.</p>"
    )


def _zones(df: pd.DataFrame) -> str:
    note = ""
    if len(df) > MAX_ZONE_ROWS:
        note = (
            f"<p class='note'>{MAX_ZONE_ROWS} of {len(df)} zones with the largest damaged area; "
            "all rows in zones.csv.</p>"
        )
        df = df.sort_values("damaged_area_m2", ascending=False, kind="stable").head(MAX_ZONE_ROWS)
    rows = [[_native(v) for v in row] for row in df.itertuples(index=False)]
    return note + _table([c.replace("_", " ") for c in df.columns], rows)


def _native(v: Any) -> Any:
    """Numpy scalars → Python scalars (for formatting)."""
    return v.item() if hasattr(v, "item") else v


def legend_of(summary: Mapping[str, Any]) -> ClassLegend:
    """The class legend recorded in ``summary.json`` (default names for older summaries)."""
    classes = summary.get("classes") or []
    if not classes:
        return class_legend(1)
    colors = []
    for c in classes:
        h = str(c["color"]).lstrip("#")
        colors.append((int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 255))
    return ClassLegend(tuple(str(c["name"]) for c in classes), tuple(colors))
