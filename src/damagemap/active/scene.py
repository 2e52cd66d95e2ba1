"""``damagemap suggest``: the tiles of a scene to label next, streamed like ``damagemap map``.

The scene is cut into non-overlapping ``tile × tile`` candidates (the last row and column
shifted inward, as the mapper does). Batches of ``batch`` candidates are read window by window
(:func:`damagemap.geo.raster.read_tiles`), so memory is bounded by tile × batch plus one pooled
feature vector per candidate — never by the scene. For each candidate the model gives:

* its **uncertainty** — the mean normalised predictive entropy over its valid pixels, the
  mapper's ``uncertainty`` layer (read from an existing ``damagemap map`` output folder when one
  is given, so only the encoder runs);
* its **features** — the encoder's deepest map, averaged: what diversity is measured on.

Candidates touching an already drawn label polygon are the *labelled set* (their features are
what the next tiles should differ from) and are never suggested; candidates with less than
``min_valid`` valid pixels (nodata) are skipped. :func:`damagemap.active.select.select_tiles`
ranks the rest. The result is written as polygons in the scene CRS (``rank``, ``score``,
``uncertainty``, ``distance``, ``distance_to_labelled``, ``valid_share``, pixel ``row``/``col``)
and a PNG overview.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rich.progress import Progress
from shapely.geometry import box

from damagemap.active.select import select_tiles
from damagemap.batch_size import default_batch
from damagemap.errors import ConfigError, InputError
from damagemap.geo.raster import (
    SceneInfo,
    SceneReadError,
    attach_pre_scene,
    close_datasets,
    gdal_env,
    open_scene,
    read_tiles,
)
from damagemap.geo.sources import SceneLike, resolve_scene
from damagemap.geo.spec import SceneInputSpec
from damagemap.geo.vector import gpkg_date, load_vectors, write_layer
from damagemap.io_atomic import publish, temp_name
from damagemap.mapping.encoding import LEVELS, NODATA, normalised_entropy
from damagemap.mapping.windows import tile_starts
from damagemap.tile_predictor import ModelTilePredictor

LAYER = "suggested_tiles"


@dataclass(frozen=True)
class SuggestOptions:
    """How :func:`suggest_tiles` scores a scene.

    Attributes:
        n: tiles to suggest.
        tile: candidate size in scene pixels (default: the model's native tile).
        batch: candidates per model call.
        spec: band selection and scaling (as for ``map``).
        labels: polygons already drawn (any CRS): their tiles are the labelled set.
        map_dir: an existing ``damagemap map`` output folder of the same scene: its
            ``uncertainty.tif`` is used instead of running the head.
        min_valid: least share of valid (not nodata) pixels a candidate needs.
        alpha, beta: exponents of uncertainty and diversity in the score.
        pre: the pre-event scene of a pair model (warped onto the scene's grid, as for ``map``).
    """

    n: int = 20
    tile: int | None = None
    batch: int = field(default_factory=default_batch)
    spec: SceneInputSpec = SceneInputSpec()
    labels: str | os.PathLike | gpd.GeoDataFrame | None = None
    map_dir: str | os.PathLike | None = None
    min_valid: float = 0.5
    alpha: float = 1.0
    beta: float = 1.0
    pre: SceneLike | None = None


def candidate_origins(width: int, height: int, tile: int) -> list[tuple[int, int]]:
    """``(row, col)`` of every candidate tile: a non-overlapping grid, last row/column shifted inward."""
    return [(r, c) for r in tile_starts(height, tile, tile) for c in tile_starts(width, tile, tile)]


def _map_uncertainty(map_dir: Path, scene: SceneInfo) -> rasterio.io.DatasetReader:
    path = map_dir / "uncertainty.tif"
    if not path.is_file():
        raise InputError(map_dir, "no uncertainty.tif: not a `damagemap map` output folder")
    ds = rasterio.open(path)
    if (ds.width, ds.height, ds.crs, ds.transform) != (scene.width, scene.height, scene.crs, scene.transform):
        ds.close()
        raise InputError(path, "was mapped from another scene (its grid differs from the scene's)")
    return ds


def suggest_tiles(
    predictor: ModelTilePredictor,
    scene_path: SceneLike,
    options: SuggestOptions | None = None,
    progress: Progress | None = None,
) -> gpd.GeoDataFrame:
    """Rank the scene's candidate tiles for labelling (see the module docstring).

    Raises:
        InputError: bad scene, labels or map folder (naming the file).
        ConfigError: no candidate left (every tile is labelled or nodata).
    """
    o = options or SuggestOptions()
    tile = o.tile or predictor.native_tile
    if tile < 16 or o.batch < 1 or not 0 < o.min_valid <= 1:
        raise ConfigError(
            f"suggest: tile must be >= 16, batch >= 1 and min_valid in (0, 1], got {tile}, {o.batch}, {o.min_valid}"
        )
    source = resolve_scene(scene_path)
    with gdal_env(source.gdal_path):
        scene = open_scene(source, o.spec, predictor.in_bands)
        if predictor.pair != (o.pre is not None):
            need = "needs the pre-event scene (--pre)" if predictor.pair else "takes the post-event scene only"
            raise ConfigError(f"{source.name}: model {predictor.model.recipe.name} {need}")
        if o.pre is not None:
            scene = attach_pre_scene(scene, o.pre, o.spec, predictor.in_bands)
        labels = load_vectors(o.labels, scene.crs, "labels")
        labelled_boxes = None if labels is None or labels.empty else labels
        uncertainty_ds = _map_uncertainty(Path(o.map_dir), scene) if o.map_dir is not None else None
        origins = candidate_origins(scene.width, scene.height, tile)
        task = progress.add_task("suggest tiles", total=len(origins), info="") if progress is not None else None
        rows: list[dict] = []
        feats: list[np.ndarray] = []
        try:
            for start in range(0, len(origins), o.batch):
                chunk = origins[start : start + o.batch]
                x, valid = read_tiles(scene.plan, chunk, tile)
                probs, pooled = predictor.predict(x, head=uncertainty_ds is None)
                for j, (row, col) in enumerate(chunk):
                    ok = valid[j]
                    share = float(ok.mean())
                    if share < o.min_valid:
                        continue
                    if uncertainty_ds is not None:
                        window = rasterio.windows.Window(
                            col, row, min(tile, scene.width - col), min(tile, scene.height - row)
                        )
                        layer = uncertainty_ds.read(1, window=window)
                        has = layer != NODATA
                        u = float(layer[has].mean() / LEVELS) if has.any() else 0.0
                    else:
                        assert probs is not None
                        u = float(normalised_entropy(probs[j])[ok].mean())
                    x0, y0 = scene.transform @ (col, row)
                    x1, y1 = scene.transform @ (col + min(tile, scene.width), row + min(tile, scene.height))
                    rows.append(
                        {
                            "row": row,
                            "col": col,
                            "size_px": min(tile, scene.width, scene.height),
                            "uncertainty": u,
                            "valid_share": share,
                            "geometry": box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)),
                        }
                    )
                    feats.append(pooled[j])
                if progress is not None and task is not None:
                    progress.advance(task, len(chunk))
        except SceneReadError as exc:
            raise InputError(exc.path, exc.problem) from None
        finally:
            if uncertainty_ds is not None:
                uncertainty_ds.close()
            close_datasets()
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=scene.crs) if rows else None
    if frame is None:
        raise ConfigError(f"{source}: no candidate tile has {o.min_valid:.0%} valid pixels")
    features = np.stack(feats)
    is_labelled = np.zeros(len(frame), dtype=bool)
    if labelled_boxes is not None:
        hit = labelled_boxes.sindex.query(frame.geometry, predicate="intersects")[0]
        is_labelled[np.unique(hit)] = True
    pool = np.flatnonzero(~is_labelled)
    if len(pool) == 0:
        raise ConfigError(f"{source}: every candidate tile already holds label polygons")
    pick = select_tiles(
        frame["uncertainty"].to_numpy()[pool], features[pool], o.n, features[is_labelled], o.alpha, o.beta
    )
    chosen = frame.iloc[pool[pick.index]].reset_index(drop=True)
    chosen.insert(0, "rank", np.arange(1, len(chosen) + 1))
    chosen.insert(1, "score", pick.score)
    chosen["distance"] = pick.distance
    chosen["distance_to_labelled"] = pick.distance_to_labelled
    chosen.attrs["labelled_tiles"] = int(is_labelled.sum())
    chosen.attrs["candidates"] = int(len(pool))
    return chosen


def write_suggestions(tiles: gpd.GeoDataFrame, out: str | os.PathLike, scene_path: SceneLike) -> list[Path]:
    """Write the GeoPackage (layer ``suggested_tiles``) and ``<out>.png``; both appear only when complete."""
    out = Path(out)
    if out.suffix.lower() != ".gpkg":
        raise ConfigError(f"--out {out}: suggestions are written as a GeoPackage (.gpkg)")
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    tmp, tmp_png = temp_name(out), temp_name(png)
    try:
        write_layer(tiles, tmp, LAYER, date=gpkg_date(scene_path))
        overview_png(tiles, scene_path, tmp_png)
        publish([(tmp, out), (tmp_png, png)])
    finally:
        tmp.unlink(missing_ok=True)
        tmp_png.unlink(missing_ok=True)
    return [out, png]


def overview_png(tiles: gpd.GeoDataFrame, scene_path: SceneLike, path: Path, max_size: int = 900) -> None:
    """The scene's quicklook with the suggested tiles outlined and numbered by rank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from damagemap.report.figures import overview_shape, scene_rgb

    gdal_path = resolve_scene(scene_path).gdal_path
    shape = overview_shape(gdal_path, max_size)
    with gdal_env(gdal_path), rasterio.open(gdal_path) as src:
        sx, sy = shape[1] / src.width, shape[0] / src.height
    fig, ax = plt.subplots(figsize=(shape[1] / 100, shape[0] / 100), dpi=100)
    ax.imshow(scene_rgb(gdal_path, shape))
    for t in tiles.itertuples():
        w, h = t.size_px * sx, t.size_px * sy
        ax.add_patch(Rectangle((t.col * sx, t.row * sy), w, h, fill=False, edgecolor="#ffd400", linewidth=1.5))
        ax.text(t.col * sx + 2, t.row * sy + 2, str(t.rank), color="#ffd400", fontsize=8, va="top", fontweight="bold")
    ax.set_axis_off()
    ax.set_title(f"{len(tiles)} tiles to label next (1 = first)", fontsize=9)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, format="png")
    plt.close(fig)
