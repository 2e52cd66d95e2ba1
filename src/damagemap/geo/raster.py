"""Open and check a scene, then read model-ready tiles from it window by window.

:func:`open_scene` does every check up front (before any output exists) and raises
:class:`~damagemap.errors.InputError` naming the file: missing, not a raster / corrupt,
truncated (the last pixel cannot be read), no CRS, rotated geotransform, bands not matching
the spec or the model. :func:`read_tiles` reads windows (padding past the scene edge as
nodata), builds the validity mask from the dataset's nodata value / internal mask / alpha
(a pixel is valid if any selected band is valid) and scales values to [0, 1]. Invalid pixels
are set to 0 in the model input; the mapper writes nodata there.

:class:`ReadPlan` is small and picklable so Dask workers can read their own windows (the scene
path must be readable from the workers). Scenes are anything :func:`damagemap.geo.sources.resolve_scene`
accepts — local files, URLs, ``/vsi…`` paths, STAC items; the plan carries the resolved GDAL path
(for a STAC item, its asset's href). Remote scenes are opened and read with
:data:`~damagemap.geo.sources.REMOTE_GDAL_DEFAULTS`; their network failures become one
:class:`~damagemap.errors.InputError` naming the URL.

A pre-event scene (pair models, :func:`attach_pre_scene`) is read through a ``WarpedVRT`` onto the
post-event scene's pixel grid on the fly (any CRS and resolution, bilinear), window by window like
the post scene; its bands follow the post bands in every tile, and a pixel is valid only where
both images are.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from damagemap.errors import InputError
from damagemap.geo.sources import SceneLike, SceneSource, http_status, remote_gdal_options, resolve_scene
from damagemap.geo.sources import is_remote as _is_remote
from damagemap.geo.spec import SceneInputSpec


def describe(exc: BaseException) -> str:
    """A rasterio error with GDAL's underlying message (rasterio often says "see previous")."""
    text, cause = str(exc), exc.__cause__ or exc.__context__
    return f"{text} ({cause})" if cause is not None and str(cause) not in text else text


class SceneReadError(Exception):
    """A window could not be read (picklable; turned into an InputError by the engine)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path, self.problem = path, problem


@dataclass(frozen=True)
class ReadPlan:
    """What to read from a scene and how to scale it (everything a worker needs)."""

    path: str
    indexes: tuple[int, ...]
    repeat: int  # >1: replicate the single band read this many times
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    width: int
    height: int
    grid: tuple[str, tuple[float, ...], int, int] | None = None
    """Read warped onto this grid (CRS WKT, affine, width, height) instead of the file's own (pre scenes)."""
    pre: ReadPlan | None = None
    """The pre-event scene, read onto this plan's grid; its bands follow this plan's in every tile."""


@dataclass(frozen=True)
class SceneInfo:
    """A checked scene: its read plan, where it came from and the georeferencing every output copies."""

    plan: ReadPlan
    crs: rasterio.crs.CRS
    transform: rasterio.Affine
    width: int
    height: int
    count: int
    dtype: str
    source: SceneSource


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < 32:
            self.messages.append(record.getMessage())


@contextmanager
def gdal_messages(remote: bool = True) -> Iterator[list[str]]:
    """Collect GDAL's warnings (rasterio logs them) while reading a remote scene.

    A failed range request mid-read surfaces only as "IReadBlock failed"; the HTTP status is in
    a warning just before it, which :func:`remote_problem` picks up from this list.
    """
    if not remote:
        yield []
        return
    handler, logger = _Messages(), logging.getLogger("rasterio")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def remote_problem(exc: BaseException, messages: Sequence[str] = (), gdal_path: str | None = None) -> str:
    """GDAL's network failure in words: HTTP status, connection refused, timeout, credentials.

    ``messages``: GDAL warnings logged during the failed call (:func:`gdal_messages`).
    ``gdal_path``: the scene; when GDAL names no status (a range request failing mid-read is
    only a short read to it), an http(s) scene is asked once what it answers now.
    """
    text = describe(exc)
    context = " ".join([text, *messages])
    m = re.search(r"(?:HTTP response code: |response_code=)(\d+)", context)
    code = int(m.group(1)) if m else None
    if code is None and gdal_path is not None and "IReadBlock failed" in context:
        code = http_status(gdal_path)
    if code is not None:
        meaning = {400: "bad request", 401: "authentication required", 403: "access denied", 404: "not found"}
        hint = " (credentials? see GDAL's AWS_*/GS_*/AZURE_*/GDAL_HTTP_* options)" if code in (401, 403) else ""
        return f"HTTP {code} ({meaning.get(code, 'server error' if code >= 500 else 'refused')}){hint}"
    if re.search(r"timed out|timeout", context, re.IGNORECASE):
        return f"timed out ({text}; GDAL_HTTP_TIMEOUT={_option('GDAL_HTTP_TIMEOUT')} s)"
    curl = re.search(r"CURL error: ([^(;]*)", context)
    if curl:
        return f"cannot reach the server ({curl.group(1).strip()})"
    if "AWS_NO_SIGN_REQUEST" in text:
        return f"{text} (set AWS credentials, or AWS_NO_SIGN_REQUEST=YES for a public bucket)"
    return text


def _option(name: str) -> str:
    return os.environ.get(name) or remote_gdal_options().get(name, "unset")


def open_scene(path: SceneLike, spec: SceneInputSpec, in_bands: int) -> SceneInfo:
    """Open a scene and check it can feed a model expecting ``in_bands`` bands.

    ``path`` is anything :func:`~damagemap.geo.sources.resolve_scene` accepts (or its result):
    a local file, a URL, a ``/vsi…`` path or a STAC item.
    """
    source = resolve_scene(path)
    name = source.name
    where = "" if source.href is None else f" {source.href}"  # a STAC asset: say which file
    if source.local:
        local = Path(source.gdal_path)
        what = "scene file" if source.stac_item is None else f"asset file{where}"
        if not local.exists():
            raise InputError(name, f"{what} not found")
        if not local.is_file():
            raise InputError(name, f"{what} is not a file")
    with gdal_env(source.gdal_path), gdal_messages(source.remote) as messages:
        try:
            src = rasterio.open(source.gdal_path)
        except RasterioError as exc:
            if source.remote:
                problem = remote_problem(exc, messages)
                raise InputError(name, f"cannot open the remote scene{where}: {problem}") from None
            raise InputError(
                name, f"cannot open{where} as a raster (corrupt or not a GeoTIFF/COG?): {describe(exc)}"
            ) from exc
        with src:
            return _check(src, source, spec, in_bands, messages)


_log = logging.getLogger(__name__)

CLIP_WARN_SHARE = 0.01
"""Share of (sampled) valid pixel values outside the scaling range above which clipping is reported."""


def _check_value_range(
    src: rasterio.io.DatasetReader, name: str, indexes: Sequence[int], lo: np.ndarray, hi: np.ndarray, explicit: bool
) -> None:
    """Refuse a float scene far outside [0, 1] without ``--scale``; warn when a given scale clips many pixels.

    Reads a decimated copy (at most 256 px a side, from overviews where present).
    """
    if not explicit and np.issubdtype(np.dtype(src.dtypes[indexes[0] - 1]), np.integer):
        return  # the dtype's own range: nothing can clip
    factor = max(1, max(src.width, src.height) // 256)
    shape = (len(indexes), max(1, src.height // factor), max(1, src.width // factor))
    try:
        data = src.read(list(indexes), out_shape=shape, masked=True)
    except RasterioError:
        return  # unreadable pixels are reported by the reads that need them
    values = data.compressed().reshape(-1) if np.ma.isMaskedArray(data) else np.asarray(data).reshape(-1)
    if values.size == 0:
        return
    per_band = np.ma.masked_invalid(data.astype(np.float64))
    outside = (per_band < lo[:, None, None]) | (per_band > hi[:, None, None])
    share = float(outside.sum()) / max(1, int(per_band.count()))
    if share <= CLIP_WARN_SHARE:
        return
    vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
    if not explicit:
        raise InputError(
            name,
            f"float pixel values range {vmin:g} to {vmax:g}, outside [0, 1] for {share:.0%} of the pixels: "
            f"give the value range with --scale MIN,MAX (e.g. --scale {min(vmin, 0):g},{vmax:g})"
            " or a divisor --scale N",
        )
    _log.warning(
        "%s: %.1f%% of the pixels (values %g to %g) fall outside --scale %s and are clipped",
        name,
        100 * share,
        vmin,
        vmax,
        ",".join(f"{a:g}..{b:g}" for a, b in zip(lo, hi, strict=True)),
    )


def _check(
    src: rasterio.io.DatasetReader, source: SceneSource, spec: SceneInputSpec, in_bands: int, messages: list[str]
) -> SceneInfo:
    name = source.name
    if src.crs is None:
        raise InputError(
            name,
            "scene has no CRS; georeference it first (e.g. `gdal_edit.py -a_srs EPSG:32616 "
            "scene.tif`, or export it from QGIS/GDAL with its coordinate system)",
        )
    t = src.transform
    if t.b != 0 or t.d != 0:
        raise InputError(name, "scene has a rotated/sheared geotransform; warp it north-up first (gdalwarp)")
    indexes, repeat = _select_bands(name, spec, src.count, in_bands)
    lo, hi = spec.ranges(src.dtypes[indexes[0] - 1], len(indexes))
    try:  # a truncated file opens fine but fails on its last blocks
        for window in (Window(src.width - 1, src.height - 1, 1, 1), Window(0, 0, 1, 1)):
            src.read(list(indexes), window=window)
            src.read_masks(list(indexes), window=window)
    except RasterioError as exc:
        if source.remote:
            problem = remote_problem(exc, messages, source.gdal_path)
            raise InputError(name, f"cannot read pixels of the remote scene: {problem}") from None
        raise InputError(name, f"cannot read pixels (truncated or corrupt file?): {describe(exc)}") from exc
    _check_value_range(src, name, indexes, lo, hi, explicit=not isinstance(spec.scale, str))
    plan = ReadPlan(source.gdal_path, indexes, repeat, tuple(lo), tuple(hi), src.width, src.height)
    return SceneInfo(plan, src.crs, src.transform, src.width, src.height, src.count, src.dtypes[0], source)


def attach_pre_scene(scene: SceneInfo, pre: SceneLike, spec: SceneInputSpec, in_bands: int) -> SceneInfo:
    """``scene`` whose plan also reads the pre-event scene ``pre`` warped onto its grid.

    ``pre`` is checked like a post scene (exists, readable, CRS, bands) and must overlap it.
    """
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds

    pre_info = open_scene(pre, spec, in_bands)
    west, south, east, north = array_bounds(scene.height, scene.width, scene.transform)
    pre_bounds = array_bounds(pre_info.height, pre_info.width, pre_info.transform)
    p_west, p_south, p_east, p_north = transform_bounds(pre_info.crs, scene.crs, *pre_bounds)
    if p_west >= east or p_east <= west or p_south >= north or p_north <= south:
        raise InputError(
            pre_info.source.name, f"pre-event scene does not overlap the post-event scene {scene.source.name}"
        )
    grid = (scene.crs.to_wkt(), tuple(scene.transform)[:6], scene.width, scene.height)
    pre_plan = replace(pre_info.plan, width=scene.width, height=scene.height, grid=grid)
    return replace(scene, plan=replace(scene.plan, pre=pre_plan))


def _select_bands(path: str, spec: SceneInputSpec, count: int, in_bands: int) -> tuple[tuple[int, ...], int]:
    if spec.bands is not None:
        bad = [b for b in spec.bands if b > count]
        if bad:
            raise InputError(path, f"band(s) {bad} requested but the scene has only {count} band(s)")
        indexes = spec.bands
    else:
        indexes = tuple(range(1, count + 1))
    n = len(indexes)
    if n == in_bands:
        return indexes, 1
    if n == 1 and spec.replicate_single_band:
        return indexes, in_bands
    what = f"bands {list(indexes)} selected" if spec.bands is not None else f"the scene has {count} band(s)"
    hint = (
        " (--replicate-single-band repeats the single band; in Python SceneInputSpec(replicate_single_band=True))"
        if n == 1
        else " (choose the bands with --bands, e.g. --bands 1,2,3; in Python SceneInputSpec(bands=...))"
    )
    raise InputError(path, f"band count mismatch: {what} but the model expects {in_bands}{hint}")


GDAL_CACHE_MB = 16
"""GDAL block cache cap for mapping (GDAL's default, 5 % of RAM, would let RSS grow with the scene).

The cache fills to its cap both while tiles are read and blocks written and during the COG
conversion, so the cap adds to the peak one for one. The mapper's working set is small (one
band's row of scene and output blocks: ~18 MB for a 4096 px band of 512 px blocks), and
mapping 100 MP took the same time with 16 MB as with 64 (40.4 / 38.0 s against 40.0 / 42.3 s,
peak RSS 761 / 769 → 659 / 670 MB; torch 2.14.1+cu130, 2-core EPYC).
"""


def gdal_env(path: str | os.PathLike | None = None) -> rasterio.Env:
    """A rasterio environment with a bounded block cache (unless the user set GDAL_CACHEMAX).

    For a remote ``path`` (``/vsicurl/``, ``/vsis3/``, …) it also sets
    :data:`~damagemap.geo.sources.REMOTE_GDAL_DEFAULTS` (each unless set in the environment).
    """
    # rasterio passes an integer GDAL_CACHEMAX to GDALSetCacheMax64, i.e. in bytes (GDAL itself
    # reads small numbers as MB): 64 would be a 64-byte cache, and every block read decoded again
    cache: dict[str, object] = {"GDAL_CACHEMAX": GDAL_CACHE_MB << 20}
    options: dict[str, object] = {} if "GDAL_CACHEMAX" in os.environ else cache
    if path is not None and _is_remote(os.fspath(path)):
        options.update(remote_gdal_options())
    return rasterio.Env(**options)


_OPEN: dict[tuple[str, object, int], rasterio.io.DatasetReader | WarpedVRT] = {}


def _dataset(
    path: str, grid: tuple[str, tuple[float, ...], int, int] | None = None
) -> rasterio.io.DatasetReader | WarpedVRT:
    """A per-process open handle (workers and the main process each keep their own); warped onto ``grid`` if given."""
    key = (path, grid, os.getpid())
    ds = _OPEN.get(key)
    if ds is None or ds.closed:
        if grid is None:
            ds = rasterio.open(path)
        else:
            crs, transform, width, height = grid
            ds = WarpedVRT(
                _dataset(path),
                crs=crs,
                transform=rasterio.Affine(*transform),
                width=width,
                height=height,
                resampling=Resampling.bilinear,
            )
        _OPEN[key] = ds
    return ds


def close_datasets() -> None:
    """Close this process's cached handles (warped views first)."""
    mine = [k for k in _OPEN if k[2] == os.getpid()]
    for key in sorted(mine, key=lambda k: k[1] is None):
        _OPEN.pop(key).close()


def read_tiles(plan: ReadPlan, origins: list[tuple[int, int]], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read tiles at ``(row, col)`` origins → ``x [B, C, T, T]`` float32 in [0, 1], ``valid [B, T, T]``.

    With a pre-event plan (``plan.pre``) the tiles hold the post bands then the pre bands, and a
    pixel is valid where both are.
    """
    x, valid = _read_plan(plan, origins, size)
    if plan.pre is None:
        return x, valid
    x_pre, valid_pre = _read_plan(plan.pre, origins, size)
    valid &= valid_pre
    x = np.concatenate([x, x_pre], axis=1)
    x[np.broadcast_to(~valid[:, None], x.shape)] = 0.0
    return x, valid


def _read_plan(plan: ReadPlan, origins: list[tuple[int, int]], size: int) -> tuple[np.ndarray, np.ndarray]:
    n_read = len(plan.indexes)
    x = np.zeros((len(origins), n_read, size, size), dtype=np.float32)
    valid = np.zeros((len(origins), size, size), dtype=bool)
    lo = np.asarray(plan.lo, dtype=np.float32)[:, None, None]
    inv_span = (1.0 / (np.asarray(plan.hi, dtype=np.float64) - plan.lo)).astype(np.float32)[:, None, None]
    remote, messages = _is_remote(plan.path), []
    try:
        with gdal_env(plan.path), gdal_messages(remote) as messages:  # µs per batch; bounds the block cache too
            src = _dataset(plan.path, plan.grid)
            # bands without nodata, alpha or mask band: every pixel is valid, no mask to read
            all_valid = all(src.mask_flag_enums[i - 1] == [MaskFlags.all_valid] for i in plan.indexes)
            for i, (row, col) in enumerate(origins):
                h, w = min(size, plan.height - row), min(size, plan.width - col)
                window = Window(col, row, w, h)
                raw = src.read(list(plan.indexes), window=window)
                if all_valid:
                    ok = np.ones((h, w), dtype=bool)
                else:
                    ok = src.read_masks(list(plan.indexes), window=window).any(axis=0)
                scaled = raw.astype(np.float32)
                scaled -= lo
                scaled *= inv_span
                if not np.issubdtype(raw.dtype, np.integer):
                    ok &= np.isfinite(scaled).all(axis=0)
                np.clip(scaled, 0.0, 1.0, out=scaled)
                scaled[:, ~ok] = 0.0
                x[i, :, :h, :w] = scaled
                valid[i, :h, :w] = ok
    except RasterioError as exc:
        if remote:
            problem = remote_problem(exc, messages, plan.path)
            raise SceneReadError(plan.path, f"cannot read pixels of the remote scene: {problem}") from None
        raise SceneReadError(plan.path, f"cannot read pixels (truncated or corrupt file?): {describe(exc)}") from None
    if plan.repeat > 1:
        x = np.repeat(x, plan.repeat, axis=1)
    return x, valid
