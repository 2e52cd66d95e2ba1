"""Everything made from the finished blocks: rasters, polygons, building and zone tables.

All files are produced in the work directory's ``tmp/`` and only moved into ``out_dir`` by
:func:`damagemap.mapping.writer.publish` once every one of them is complete.

Output files (in ``out_dir``):

=========================  ==============================================================
``damage_probability.tif``  COG, uint8 0–254 = P(damage)·254, 255 = nodata
``damage_class.tif``        COG, uint8 class, 255 = nodata; class names in
                            ``damage_class.tif.aux.xml`` (category names + attribute table)
``uncertainty.tif``         COG, uint8 0–254 = normalised entropy·254, 255 = nodata
``damage.gpkg``             layers ``damaged_regions``, ``buildings`` (with footprints),
                            ``zones`` (grid or given zones)
``buildings.csv``           per-building table (with footprints)
``zones.csv``               zonal statistics table
``summary.json``            scene (as given: path/URL, or STAC item + asset + href),
                            parameters, classes (name, colour), provenance and totals
                            (no timings)
``*.qml``                   QGIS styles: one per raster (``damage_class.qml``, …) and per
                            GeoPackage layer (``buildings.qml``, …; also in ``layer_styles``)
=========================  ==============================================================

Every GeoTIFF carries the provenance (:mod:`damagemap.mapping.provenance`) as metadata tags,
``damage.gpkg`` as dataset metadata.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from damagemap.errors import InputError
from damagemap.geo.raster import SceneInfo, gdal_env
from damagemap.geo.vector import gpkg_date, pixel_area_m2, write_layer
from damagemap.mapping.checkpoint import Checkpoint
from damagemap.mapping.classes import ClassLegend
from damagemap.mapping.encoding import CLASS, LAYERS, PROBABILITY, UNCERTAINTY
from damagemap.mapping.provenance import flat_tags
from damagemap.mapping.styles import (
    PROBABILITY_RAMP,
    UNCERTAINTY_RAMP,
    class_aux_xml,
    class_raster_qml,
    layer_qml,
    layer_styles_table,
    ramp_raster_qml,
    write_text,
)
from damagemap.mapping.writer import FILENAMES, Assembly

if TYPE_CHECKING:
    import geopandas as gpd

GPKG_NAME, BUILDINGS_CSV, ZONES_CSV, SUMMARY = "damage.gpkg", "buildings.csv", "zones.csv", "summary.json"
GPKG_LAYERS = ("damaged_regions", "buildings", "zones")
CLASS_AUX = FILENAMES[CLASS] + ".aux.xml"
STYLE_FILES = tuple(Path(f).stem + ".qml" for f in FILENAMES.values()) + tuple(f"{n}.qml" for n in GPKG_LAYERS)
PAGES = ("report.html", "viewer.html")  # written after the products by the report / viewer
ALL_OUTPUTS = (*FILENAMES.values(), CLASS_AUX, GPKG_NAME, BUILDINGS_CSV, ZONES_CSV, SUMMARY, *STYLE_FILES, *PAGES)


@dataclass
class Products:
    """The finished outputs (final name → temporary path) and their totals."""

    files: dict[str, Path] = field(default_factory=dict)  # final name -> temporary path
    stats: dict[str, Any] = field(default_factory=dict)


def _csv(gdf: gpd.GeoDataFrame, path: Path) -> None:
    gdf.drop(columns=gdf.geometry.name).to_csv(path, index=False, float_format="%.10g", lineterminator="\n")


def _cogs(assembly: Assembly, tmp: Path) -> dict[str, Path]:
    """Convert the assembled layers into COGs, one after another; final names → COG paths.

    Each conversion already compresses on every core (``NUM_THREADS``). Three conversions in
    parallel threads were up to ~20 % faster but each holds its own overview buffers, and that
    set the peak RSS of a whole map (100 MP, GDAL computing the overviews: 3.49–4.29 s at
    681–683 MB in threads against 3.96–5.28 s at 644–654 MB one after another).
    """
    with gdal_env():  # the bounded block cache
        cogs = {}
        for name in LAYERS:
            cogs[FILENAMES[name]] = tmp / FILENAMES[name]
            assembly.to_cog(name, cogs[FILENAMES[name]])
        return cogs


def make_products(
    checkpoint: Checkpoint,
    assembly: Assembly,
    scene: SceneInfo,
    *,
    num_outputs: int,
    damaged: list[int],
    footprints: gpd.GeoDataFrame | None,
    zones: gpd.GeoDataFrame | None,
    grid_m: float | None,
    building_threshold: float,
    id_column: str | None,
    footprints_source: Any,
    vectorize: bool,
    summary_params: dict[str, Any],
    legend: ClassLegend,
    provenance: dict[str, Any],
    run: dict[str, Any],
) -> Products:
    """Build every output in ``checkpoint.tmp_dir`` from the assembled layers (every block written)."""
    tmp = checkpoint.tmp_dir
    out = Products()
    tags = flat_tags(provenance)
    assembly.add_resumed()  # normally none are left: resumed blocks were written before predicting
    paths = assembly.close()
    stats = assembly.stats()
    if stats["valid_pixels"] == 0:
        raise InputError(
            scene.source.name, "no valid pixels: the scene (selected bands) is entirely nodata; nothing to map"
        )
    centre = scene.transform @ (scene.width / 2, scene.height / 2)
    stats["damaged_area_m2"] = stats["damaged_pixels"] * pixel_area_m2(scene.transform, scene.crs, at=centre)

    gpkg = tmp / GPKG_NAME
    date = gpkg_date(scene.source)
    layers: list[str] = []
    # the vector products import geopandas (~130 MB with pandas and pyogrio): only when asked for
    if vectorize:
        from damagemap.mapping.vectorize import damaged_regions

        n_regions = 0
        for i, frame in enumerate(damaged_regions(paths[CLASS], paths[PROBABILITY], damaged)):
            write_layer(frame, gpkg, "damaged_regions", date=date, append=i > 0, geometry_type="MultiPolygon")
            n_regions += len(frame)
        stats["regions"] = n_regions
        layers.append("damaged_regions")
    buildings = None
    if footprints is not None:
        from damagemap.mapping.buildings import building_damage

        buildings = building_damage(
            footprints,
            paths[CLASS],
            paths[PROBABILITY],
            damaged,
            fraction_threshold=building_threshold,
            id_column=id_column,
            source=footprints_source,
        )
        write_layer(buildings, gpkg, "buildings", date=date)
        _csv(buildings, tmp / BUILDINGS_CSV)
        out.files[BUILDINGS_CSV] = tmp / BUILDINGS_CSV
        stats["buildings"] = len(buildings)
        stats["damaged_buildings"] = int((buildings["damage_class"] >= 1).sum())
        layers.append("buildings")
    if zones is None and grid_m:
        from damagemap.mapping.zonal import regular_grid

        zones = regular_grid(scene.crs, scene.transform, scene.width, scene.height, grid_m)
    if zones is not None:
        from damagemap.mapping.zonal import zonal_stats

        table = zonal_stats(zones, paths[CLASS], damaged, buildings)
        write_layer(table, gpkg, "zones", date=date)
        _csv(table, tmp / ZONES_CSV)
        out.files[ZONES_CSV] = tmp / ZONES_CSV
        stats["zones"] = len(table)
        layers.append("zones")
    if layers:
        styles = layer_styles_table(layers, legend, "geom", date)
        write_layer(styles, gpkg, "layer_styles", date=date, metadata=tags)
        out.files[GPKG_NAME] = gpkg
        for name in layers:
            out.files[f"{name}.qml"] = write_text(tmp / f"{name}.qml", layer_qml(name, legend))
    rasters = {
        CLASS: class_raster_qml(legend),
        PROBABILITY: ramp_raster_qml(PROBABILITY_RAMP, "no damage", "damage"),
        UNCERTAINTY: ramp_raster_qml(UNCERTAINTY_RAMP, "certain", "uncertain"),
    }
    for name, qml in rasters.items():
        style = Path(FILENAMES[name]).stem + ".qml"
        out.files[style] = write_text(tmp / style, qml)
    out.files[CLASS_AUX] = write_text(tmp / CLASS_AUX, class_aux_xml(legend))

    out.files.update(_cogs(assembly, tmp))

    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in stats.items()}
    summary = {
        "scene": {
            **scene.source.to_json(),
            "width": scene.width,
            "height": scene.height,
            "crs": scene.crs.to_string(),
            "transform": list(scene.transform)[:6],
        },
        "parameters": summary_params,
        "classes": legend.to_json(),
        "provenance": provenance,
        "stats": clean,
        "outputs": sorted([*out.files, SUMMARY]),
        "run": run,
    }
    (tmp / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    out.files[SUMMARY] = tmp / SUMMARY
    out.stats = stats
    return out
