"""``map_scene``: a scene of any size → damage rasters, polygons, building and zone tables.

Guarantees:

* **Bounded memory** — the scene is never read whole: tiles are read in batches, only the live
  blocks of one band are accumulated, every product is made block/window-wise, and GDAL's
  block cache is capped at 16 MB (unless ``GDAL_CACHEMAX`` is set); freed heap pages go back to
  the OS during and after prediction (:mod:`damagemap.heap`), and on the CPU the pages a CUDA
  build of torch left resident in its GPU libraries are dropped (:mod:`damagemap.gpu_pages`).
* **Nothing partial** — inputs are checked before anything is written; outputs are built in
  ``out_dir/.damagemap-work/tmp`` and moved to their final names only when all are complete.
  On bad input (:class:`~damagemap.errors.InputError`) the work directory is deleted too.
* **Nothing lost** — every finished block is checkpointed; after a crash, an interrupt or a
  kill -9, rerunning the same call continues and produces byte-identical outputs. The
  checkpoint directory is the only thing a failed run leaves (hidden; removed on success).
* **Scale-out** — ``workers=N`` (a new Dask LocalCluster) or ``scheduler=ADDRESS`` (an existing
  cluster) predict on workers; this process alone writes. Results equal the single-process run.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import Progress

from damagemap.batch_size import default_batch
from damagemap.errors import ConfigError, InputError
from damagemap.geo.raster import SceneReadError, attach_pre_scene, close_datasets, gdal_env, open_scene
from damagemap.geo.sources import SceneLike, resolve_scene
from damagemap.geo.spec import SceneInputSpec
from damagemap.geo.vector import is_geodataframe, load_vectors, warn_if_outside
from damagemap.gpu_pages import release_gpu_library_pages
from damagemap.locks import LOCK_NAME, OutputLock
from damagemap.mapping.checkpoint import WORK_DIRNAME, Checkpoint, scene_identity
from damagemap.mapping.classes import class_legend
from damagemap.mapping.encoding import damaged_classes
from damagemap.mapping.execution import make_executor
from damagemap.mapping.products import ALL_OUTPUTS, make_products
from damagemap.mapping.provenance import build_provenance, flat_tags, model_classes
from damagemap.mapping.reruns import check_rerun, run_record
from damagemap.mapping.result import MappingResult
from damagemap.mapping.spec import TilePredictor, check_predictor, on_accelerator, predictor_fingerprint
from damagemap.mapping.stream import predict_blocks
from damagemap.mapping.windows import TileGrid
from damagemap.mapping.writer import Assembly, publish

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)


def _bounded_gdal_cache(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with gdal_env():
            return fn(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class MapOptions:
    """How :func:`map_scene` maps a scene.

    Attributes:
        tile, overlap, batch: model tile size, overlap between tiles (≤ tile/2), tiles per call.
        spec: band selection and scaling.
        threshold: binary models: probability at or above which a pixel is classed damaged.
        workers, scheduler: Dask scale-out (0 and None = this process only).
        block: output block size (multiple of 16): the checkpoint and write unit.
        footprints: building footprints (file in any CRS, or GeoDataFrame) → ``buildings``.
        zones: zone polygons for zonal statistics; else a ``grid_m`` metre grid (None: none).
        grid_m: statistics grid cell size in metres (None: no grid).
        building_threshold: damaged-pixel share at or above which a building is damaged.
        id_column: footprint id column (default: the 1-based row number = the GeoPackage fid).
        vectorize: write the ``damaged_regions`` polygon layer.
        pre: the pre-event scene of a pair model (any CRS/resolution, warped onto the scene's
            grid window by window; nodata in either image is nodata in the outputs).
        scheduler_timeout: seconds to wait for ``scheduler`` to answer.
        dashboard: serve Dask's dashboard (``workers`` only; on 127.0.0.1, a free port).
        overwrite: replace the outputs of a run with other parameters in ``out_dir`` (else such
            a folder is refused, naming the differing parameter; :mod:`damagemap.mapping.reruns`).
    """

    tile: int = 256
    overlap: int = 8
    batch: int = field(default_factory=default_batch)
    spec: SceneInputSpec = field(default_factory=SceneInputSpec)
    threshold: float = 0.5
    workers: int = 0
    scheduler: str | None = None
    block: int = 512
    footprints: str | os.PathLike | gpd.GeoDataFrame | None = None
    zones: str | os.PathLike | gpd.GeoDataFrame | None = None
    grid_m: float | None = 250.0
    building_threshold: float = 0.5
    id_column: str | None = None
    vectorize: bool = True
    pre: SceneLike | None = None
    scheduler_timeout: float = 30.0
    dashboard: bool = False
    overwrite: bool = False


@_bounded_gdal_cache
def map_scene(
    predictor: TilePredictor,
    scene_path: SceneLike,
    out_dir: str | os.PathLike,
    options: MapOptions | None = None,
    progress: Progress | None = None,
) -> MappingResult:
    """Map a scene with ``predictor`` and write all outputs to ``out_dir``.

    Args:
        predictor: see :class:`~damagemap.mapping.spec.TilePredictor` (picklable for Dask).
        scene_path: GeoTIFF/COG (any size, any band count, uint8/uint16/float, with a CRS): a local
            file, a URL (``https://``, ``s3://``, …), a GDAL ``/vsi…`` path or a STAC item, or the
            :class:`~damagemap.geo.sources.SceneSource` of
            :func:`~damagemap.geo.sources.resolve_scene` (to pick a STAC asset). Remote scenes are
            read window by window, never downloaded whole; outputs always go to local ``out_dir``.
        out_dir: output directory (created; outputs of an earlier run with the same parameters are
            replaced, of other parameters refused unless ``options.overwrite``).
        options: tiling, thresholds, scale-out, footprints and zones (:class:`MapOptions`).
        progress: a progress display (:func:`damagemap.progress.make_progress`) to report tiles on.

    Raises:
        InputError: bad scene / footprints / zones (nothing is left in ``out_dir``); a remote scene
            that cannot be reached (one message naming the URL). A remote read failing mid-run
            keeps the finished blocks: rerunning continues.
        ConfigError: bad parameters or a predictor returning the wrong shape.
    """
    o = options or MapOptions()
    tile, overlap, batch, spec, threshold = o.tile, o.overlap, o.batch, o.spec, o.threshold
    workers, scheduler, block, footprints, zones = o.workers, o.scheduler, o.block, o.footprints, o.zones
    grid_m, building_threshold, id_column, vectorize = o.grid_m, o.building_threshold, o.id_column, o.vectorize
    started = time.perf_counter()
    in_bands, k = check_predictor(predictor)
    if not on_accelerator(predictor):
        release_gpu_library_pages()  # a CUDA build of torch left them resident at import
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    if not (0.0 <= threshold <= 1.0 and 0.0 <= building_threshold <= 1.0):
        raise ConfigError(f"thresholds must be in [0, 1], got {threshold}, {building_threshold}")
    source = resolve_scene(scene_path)
    scene = open_scene(source, spec, in_bands)
    pair = bool(getattr(predictor, "pair", False))
    if pair and o.pre is None:
        raise ConfigError(f"{source.name}: the model is a pre/post pair model; give the pre-event scene (--pre)")
    if o.pre is not None and not pair:
        raise ConfigError(f"--pre {o.pre}: the model takes the post-event scene only (not a pair model)")
    pre_source = resolve_scene(o.pre) if o.pre is not None else None
    if pre_source is not None:
        scene = attach_pre_scene(scene, pre_source, spec, in_bands)
    grid = TileGrid(scene.width, scene.height, tile=tile, overlap=overlap, block=block)
    fp = load_vectors(footprints, scene.crs, "footprints")
    zn = load_vectors(zones, scene.crs, "zones")
    warn_if_outside(fp, scene.transform, scene.width, scene.height, "footprints", str(footprints))

    params = {
        "scene": scene_identity(source),
        **({"pre": scene_identity(pre_source)} if pre_source is not None else {}),
        "predictor": predictor_fingerprint(predictor),
        "in_bands": in_bands,
        "num_outputs": k,
        "tile": tile,
        "overlap": overlap,
        "batch": batch,
        "block": block,
        "band_px": grid.band_blocks * block,  # the effective band width (balanced from BAND_PX)
        "spec": spec.to_json(),
        "threshold": threshold,
    }
    out = Path(out_dir)
    record = run_record(
        params,
        footprints=_vector_name(footprints),
        zones=_vector_name(zones),
        grid_m=grid_m if zn is None else None,
        building_threshold=building_threshold,
        id_column=id_column,
        vectorize=vectorize,
    )
    check_rerun(out, record, ALL_OUTPUTS, overwrite=o.overwrite)
    provenance = build_provenance(predictor, source, pre_source, threshold=threshold, tile=tile, overlap=overlap)
    legend = class_legend(k, model_classes(predictor))
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = OutputLock(out / WORK_DIRNAME / LOCK_NAME, str(out)).acquire()  # a second run here is refused
    checkpoint = Checkpoint(out, params)
    executor = assembly = None
    try:
        checkpoint.open()
        if checkpoint.resumed:
            log.info("%s: resuming from the checkpoint in %s", source.name, checkpoint.root)
        assembly = Assembly(checkpoint, grid, scene, legend, damaged_classes(k), flat_tags(provenance))
        assembly.add_resumed()
        executor = make_executor(predictor, workers, scheduler, o.scheduler_timeout, o.dashboard)
        run = predict_blocks(
            executor,
            scene.plan,
            grid,
            checkpoint,
            num_outputs=k,
            batch=batch,
            threshold=threshold,
            progress=progress,
            on_block=assembly.write,
        )
        n_workers = executor.workers
        executor.close()
        executor = None
        summary_params = {k_: v for k_, v in params.items() if k_ not in ("scene", "pre", "predictor")}
        if pre_source is not None:
            summary_params["pre_scene"] = str(pre_source)
        summary_params.update(building_threshold=building_threshold, grid_m=grid_m if zn is None else None)
        products = make_products(
            checkpoint,
            assembly,
            scene,
            num_outputs=k,
            damaged=damaged_classes(k),
            footprints=fp,
            zones=zn,
            grid_m=grid_m,
            building_threshold=building_threshold,
            id_column=id_column,
            footprints_source=footprints if not is_geodataframe(footprints) else None,
            vectorize=vectorize,
            summary_params=summary_params,
            legend=legend,
            provenance=provenance,
            run=record,
        )
        for stale in set(ALL_OUTPUTS) - set(products.files):  # from an earlier run with other options
            (out / stale).unlink(missing_ok=True)
        publish((tmp, out / name) for name, tmp in products.files.items())
        checkpoint.remove()
    except (InputError, SceneReadError, ConfigError) as exc:  # not resumable: leave nothing
        # ... except a remote scene's read failure (network): keep the finished blocks for a rerun
        network = isinstance(exc, SceneReadError) and source.remote
        _clean_up(checkpoint, out, created, keep_blocks=network)
        if isinstance(exc, SceneReadError):
            hint = "; rerun the same command to continue from the finished blocks" if network else ""
            raise InputError(source.name, exc.problem + hint) from None
        raise
    except BaseException:  # crash / interrupt: keep finished blocks for resuming, not partial products
        _clean_up(checkpoint, out, created, keep_blocks=True)
        raise
    finally:
        if executor is not None:
            executor.close()
        if assembly is not None:
            assembly.close()
        close_datasets()
        lock.release()

    stats = {
        "width": scene.width,
        "height": scene.height,
        "tiles": grid.n_tiles,
        "tiles_predicted": run.tiles_predicted,
        "tiles_nodata": run.tiles_nodata,
        "blocks": grid.n_block_rows * grid.n_block_cols,
        "blocks_resumed": run.blocks_resumed,
        **products.stats,
        "workers": n_workers,
        "seconds": time.perf_counter() - started,
    }
    return MappingResult.from_files(out, products.files, stats)


def _vector_name(src: object) -> str | None:
    """How the run record names footprints/zones: the path, or a GeoDataFrame's size."""
    if src is None:
        return None
    return f"GeoDataFrame[{len(src)}]" if is_geodataframe(src) else str(src)  # type: ignore[arg-type]


def _clean_up(checkpoint: Checkpoint, out: Path, created: bool, *, keep_blocks: bool) -> None:
    """After a failure: drop partial products; keep finished blocks only if asked and any exist."""
    if keep_blocks and checkpoint.has_blocks():
        shutil.rmtree(checkpoint.tmp_dir, ignore_errors=True)
        return
    checkpoint.remove()
    if created and out.exists() and not any(out.iterdir()):
        shutil.rmtree(out, ignore_errors=True)
