"""QGIS styles for every output layer, and class names for ``damage_class.tif``.

* ``<raster>.qml`` beside each COG (QGIS loads a same-named ``.qml`` automatically): the class
  map paletted with the legend of :mod:`damagemap.mapping.classes`; probability and
  uncertainty as continuous ramps over their unscaled 0–1 values (GDAL band scale 1/254).
* ``<layer>.qml`` beside ``damage.gpkg`` for each of its layers, and the same QML in the
  GeoPackage's ``layer_styles`` table (QGIS's own schema; ``useAsDefault`` = 1), so QGIS opens
  the layers styled: buildings and damaged regions by ``damage_class``, zones as a choropleth of
  ``damaged_pixel_share``.
* ``damage_class.tif.aux.xml``: GDAL's sidecar with the class names as category names and a
  raster attribute table (value, class name, RGBA), shown by ``gdalinfo`` and read by QGIS.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from damagemap.mapping.classes import ClassLegend, ramp_color

if TYPE_CHECKING:
    import pandas as pd

QGIS_VERSION = "3.28.0"
PROBABILITY_RAMP = [(0.0, "#fcfdbf"), (0.25, "#fc8961"), (0.5, "#b73779"), (0.75, "#51127c"), (1.0, "#000004")]
UNCERTAINTY_RAMP = [(0.0, "#440154"), (0.25, "#3b528b"), (0.5, "#21918c"), (0.75, "#5ec962"), (1.0, "#fde725")]
ZONE_BREAKS = [0.0, 0.01, 0.05, 0.15, 0.3, 1.0]


def _doc(body: str) -> str:
    return f"<qgis version='{QGIS_VERSION}' styleCategories='AllStyleCategories'>\n{body}\n</qgis>\n"


def _rgba(hex_color: str, alpha: int = 255) -> str:
    h = hex_color.lstrip("#")
    return f"{int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha}"


def class_raster_qml(legend: ClassLegend) -> str:
    """Paletted renderer of ``damage_class.tif``."""
    entries = "\n".join(
        f"      <paletteEntry value='{i}' color='{legend.hex(i)}' alpha='255' label='{escape(n)}'/>"
        for i, n in enumerate(legend.names)
    )
    return _doc(
        "  <pipe>\n    <rasterrenderer type='paletted' band='1' opacity='1' alphaBand='-1'>\n"
        "      <rasterTransparency/>\n      <colorPalette>\n"
        f"{entries}\n      </colorPalette>\n    </rasterrenderer>\n  </pipe>"
    )


def ramp_raster_qml(ramp: list[tuple[float, str]], low: str, high: str) -> str:
    """Continuous pseudocolour renderer over 0–1 (labels name the ends)."""
    items = []
    for i, (v, c) in enumerate(ramp):
        label = f"{v:.2f}" + (f" {low}" if i == 0 else f" {high}" if i == len(ramp) - 1 else "")
        items.append(f"          <item value='{v}' color='{c}' alpha='255' label='{escape(label)}'/>")
    return _doc(
        "  <pipe>\n    <rasterrenderer type='singlebandpseudocolor' band='1' opacity='0.85' alphaBand='-1' "
        "classificationMin='0' classificationMax='1'>\n      <rasterTransparency/>\n      <rastershader>\n"
        "        <colorrampshader colorRampType='INTERPOLATED' classificationMode='1' clip='0' "
        "minimumValue='0' maximumValue='1'>\n" + "\n".join(items) + "\n        </colorrampshader>\n"
        "      </rastershader>\n    </rasterrenderer>\n  </pipe>"
    )


def _fill_symbol(name: str, rgba: str, outline: str = "35,35,35,255") -> str:
    return (
        f"      <symbol type='fill' name='{name}' alpha='1' clip_to_extent='1' force_rhr='0'>\n"
        "        <layer class='SimpleFill' enabled='1' locked='0' pass='0'>\n          <Option type='Map'>\n"
        f"            <Option name='color' value='{rgba}' type='QString'/>\n"
        f"            <Option name='outline_color' value='{outline}' type='QString'/>\n"
        "            <Option name='outline_width' value='0.26' type='QString'/>\n"
        "            <Option name='style' value='solid' type='QString'/>\n"
        "          </Option>\n        </layer>\n      </symbol>"
    )


def categorized_qml(legend: ClassLegend, values: list[int], alpha: int = 200) -> str:
    """Polygons coloured by ``damage_class`` (``values``: the classes to list; −1 = unknown)."""
    cats, syms = [], []
    for i, v in enumerate(values):
        cats.append(f"      <category value='{v}' symbol='{i}' label='{escape(legend.name(v))}' render='true'/>")
        syms.append(_fill_symbol(str(i), _rgba(legend.hex(v), alpha)))
    return _doc(
        "  <renderer-v2 type='categorizedSymbol' attr='damage_class' symbollevels='0' forceraster='0' "
        "enableorderby='0'>\n    <categories>\n"
        + "\n".join(cats)
        + "\n    </categories>\n    <symbols>\n"
        + "\n".join(syms)
        + "\n    </symbols>\n  </renderer-v2>"
    )


def zones_qml(attr: str = "damaged_pixel_share") -> str:
    """Zones as a choropleth of ``attr`` (a 0–1 share)."""
    ranges, syms = [], []
    for i, (lo, hi) in enumerate(zip(ZONE_BREAKS, ZONE_BREAKS[1:])):
        r, g, b = ramp_color(0.2 + 0.8 * i / (len(ZONE_BREAKS) - 2))
        label = f"{lo:.0%} – {hi:.0%}"
        ranges.append(f"      <range lower='{lo}' upper='{hi}' symbol='{i}' label='{escape(label)}' render='true'/>")
        syms.append(_fill_symbol(str(i), f"{r},{g},{b},150", "90,90,90,255"))
    return _doc(
        f"  <renderer-v2 type='graduatedSymbol' attr='{attr}' graduatedMethod='GraduatedColor' "
        "symbollevels='0' forceraster='0' enableorderby='0'>\n    <ranges>\n"
        + "\n".join(ranges)
        + "\n    </ranges>\n    <symbols>\n"
        + "\n".join(syms)
        + "\n    </symbols>\n  </renderer-v2>"
    )


def layer_qml(layer: str, legend: ClassLegend) -> str:
    """The style of a ``damage.gpkg`` layer."""
    damaged = list(range(1, len(legend.names)))
    if layer == "zones":
        return zones_qml()
    if layer == "buildings":
        return categorized_qml(legend, [-1, 0, *damaged])
    return categorized_qml(legend, damaged)


def layer_styles_table(layers: list[str], legend: ClassLegend, geometry_column: str, date: str) -> pd.DataFrame:
    """Rows of QGIS's ``layer_styles`` table for ``layers`` (one default style each)."""
    import pandas as pd  # written only with vector layers; pandas costs ~35 MB to import

    return pd.DataFrame(
        {
            "f_table_catalog": "",
            "f_table_schema": "",
            "f_table_name": layers,
            "f_geometry_column": geometry_column,
            "styleName": [f"damagemap {name}" for name in layers],
            "styleQML": [layer_qml(name, legend) for name in layers],
            "styleSLD": "",
            "useAsDefault": 1,
            "description": "written by damagemap",
            "owner": "",
            "ui": "",
            "update_time": date,
        }
    )


def class_aux_xml(legend: ClassLegend) -> str:
    """GDAL PAM sidecar of ``damage_class.tif``: category names + a thematic raster attribute table."""
    cats = "".join(f"<Category>{escape(n)}</Category>" for n in legend.names)
    fields = [("Value", 0, 5), ("Class", 2, 2), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8), ("Alpha", 0, 9)]
    defs = "".join(
        f"<FieldDefn index='{i}'><Name>{n}</Name><Type>{t}</Type><Usage>{u}</Usage></FieldDefn>"
        for i, (n, t, u) in enumerate(fields)
    )
    rows = "".join(
        f"<Row index='{i}'><F>{i}</F><F>{escape(n)}</F>" + "".join(f"<F>{c}</F>" for c in legend.colors[i]) + "</Row>"
        for i, n in enumerate(legend.names)
    )
    return (
        "<PAMDataset>\n  <PAMRasterBand band='1'>\n"
        f"    <CategoryNames>{cats}</CategoryNames>\n"
        f"    <GDALRasterAttributeTable tableType='thematic'>{defs}{rows}</GDALRasterAttributeTable>\n"
        "  </PAMRasterBand>\n</PAMDataset>\n"
    )


def write_text(path: Path, text: str) -> Path:
    """Write a style file (in the work directory; published with the other outputs)."""
    path.write_text(text, encoding="utf-8")
    return path
