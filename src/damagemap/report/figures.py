"""Map figures for the HTML report, rendered with matplotlib from downsampled rasters.

Rasters are read with rasterio's ``out_shape`` at most ``max_size`` pixels on a side, so GDAL
reads a COG's (or any GeoTIFF's) overview level instead of the full-resolution data: memory
stays bounded whatever the scene size. The scene may be anything
:func:`damagemap.geo.sources.resolve_scene` accepts (a remote COG is read at overview level
too: a few requests, not a download).
"""

from __future__ import annotations

import functools
import io
import os
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from rasterio.enums import Resampling  # noqa: E402

from damagemap.geo.raster import gdal_env  # noqa: E402
from damagemap.geo.sources import SceneLike, resolve_scene  # noqa: E402
from damagemap.mapping.classes import ClassLegend  # noqa: E402
from damagemap.mapping.encoding import LEVELS, NODATA  # noqa: E402
from damagemap.report.cartography import decorate, overview_transform  # noqa: E402

PathLike = str | os.PathLike


def overview_shape(path: PathLike, max_size: int) -> tuple[int, int]:
    """``(h, w)`` of the raster scaled down to at most ``max_size`` pixels on a side."""
    with gdal_env(path), rasterio.open(path) as src:
        factor = max(1.0, max(src.width, src.height) / max_size)
        return max(1, round(src.height / factor)), max(1, round(src.width / factor))


def read_overview(
    path: PathLike,
    shape: tuple[int, int],
    bands: list[int] | None = None,
    resampling: Resampling = Resampling.average,
) -> tuple[np.ndarray, np.ndarray]:
    """Bands (1-based; default: all) resampled to ``shape`` → ``(data [C,h,w], valid [h,w])``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with gdal_env(path), rasterio.open(path) as src:
            idx = bands or list(range(1, src.count + 1))
            data = src.read(idx, out_shape=(len(idx), *shape), resampling=resampling)
            valid = src.read_masks(idx, out_shape=(len(idx), *shape), resampling=Resampling.nearest).any(axis=0)
    return data, valid


def scene_rgb(scene: SceneLike, shape: tuple[int, int]) -> np.ndarray:
    """An RGBA float quicklook of the scene (first three bands, or band 1 as grey), 2–98 % stretch.

    Read-only: a report draws it twice, and a scene without overviews is decoded whole each
    time, so a local file's quicklook is kept (keyed by its size and modification time).
    """
    path = resolve_scene(scene).gdal_path
    try:
        stat = os.stat(path)
    except OSError:  # remote or virtual: not cached
        return _scene_rgb.__wrapped__(path, shape, None)
    return _scene_rgb(path, shape, (stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=2)
def _scene_rgb(path: str, shape: tuple[int, int], identity: tuple[int, int] | None) -> np.ndarray:
    with gdal_env(path), rasterio.open(path) as src:
        bands = [1, 2, 3] if src.count >= 3 else [1]
    data, valid = read_overview(path, shape, bands)
    img = data.astype(np.float32)
    if valid.any():
        lo, hi = np.percentile(img[:, valid], [2, 98])
        img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.repeat(img, 3, axis=0) if img.shape[0] == 1 else img
    out = np.concatenate([np.moveaxis(rgb, 0, -1), valid[..., None].astype(np.float32)], axis=-1)
    out.setflags(write=False)
    return out


def to_png(fig: plt.Figure) -> bytes:
    """Render and close a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _figure(shape: tuple[int, int], title: str) -> tuple[plt.Figure, plt.Axes]:
    h, w = shape
    fig, ax = plt.subplots(figsize=(7.0, max(2.0, 7.0 * h / w)))
    ax.set_title(title)
    ax.set_axis_off()
    return fig, ax


def probability_overlay(scene_path: SceneLike, prob_path: PathLike, max_size: int) -> bytes:
    """The scene with P(damage) drawn over it (transparent where the probability is low)."""
    shape = overview_shape(prob_path, max_size)  # products have the scene's size
    rgb = scene_rgb(scene_path, shape)
    q = read_overview(prob_path, shape, [1])[0][0]
    p = np.where(q == NODATA, 0.0, q / LEVELS)
    fig, ax = _figure(shape, "Damage probability over the scene")
    ax.imshow(rgb, interpolation="nearest")
    im = ax.imshow(p, cmap="inferno", vmin=0, vmax=1, alpha=np.clip(1.5 * (p - 0.15), 0, 0.85), interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.04, label="P(damage)")
    decorate(ax, *overview_transform(prob_path, shape), shape)
    return to_png(fig)


def class_map(class_path: PathLike, max_size: int, legend: ClassLegend) -> bytes:
    """The class raster in the legend's colours (nodata transparent)."""
    cls = read_overview(class_path, overview_shape(class_path, max_size), [1], Resampling.nearest)[0][0]
    colors = np.zeros((256, 4))
    for value, rgba in legend.colormap().items():
        colors[value] = np.asarray(rgba) / 255.0
    fig, ax = _figure(cls.shape, "Damage class")
    ax.imshow(cls, cmap=ListedColormap(colors), vmin=0, vmax=255, interpolation="nearest")
    present = [int(v) for v in np.unique(cls) if v != NODATA]
    handles = [Patch(color=colors[v], label=legend.name(v)) for v in present]
    handles.append(Patch(facecolor="white", edgecolor="grey", label="nodata"))
    ax.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.9)
    decorate(ax, *overview_transform(class_path, cls.shape), cls.shape)
    return to_png(fig)


def uncertainty_map(unc_path: PathLike, max_size: int) -> bytes:
    """Normalised predictive entropy (0 = certain, 1 = maximally uncertain)."""
    data, _ = read_overview(unc_path, overview_shape(unc_path, max_size), [1])
    u = np.ma.masked_equal(data[0], NODATA).astype(np.float32) / LEVELS
    fig, ax = _figure(u.shape, "Uncertainty (normalised entropy)")
    im = ax.imshow(u, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.04, label="entropy / max")
    decorate(ax, *overview_transform(unc_path, u.shape), u.shape)
    return to_png(fig)


def buildings_zones_map(
    scene_path: SceneLike,
    class_path: PathLike,
    vectors: PathLike | None,
    legend: ClassLegend,
    max_size: int,
    suggestions: PathLike | None = None,
) -> bytes:
    """Zones as a choropleth of the damaged-pixel share, buildings by class, suggested tiles outlined."""
    import pyogrio

    shape = overview_shape(class_path, max_size)
    transform, crs = overview_transform(class_path, shape)
    rgb = scene_rgb(scene_path, shape)
    grey = rgb[..., :3].mean(axis=-1, keepdims=True)
    fig, ax = _figure(shape, "Damaged buildings and zones")
    ax.imshow(np.concatenate([np.repeat(grey * 0.6 + 0.4, 3, axis=-1), rgb[..., 3:]], axis=-1))
    to_px = ~transform
    affine = [to_px.a, to_px.b, to_px.d, to_px.e, to_px.c, to_px.f]
    handles = []
    layers = set(pyogrio.list_layers(vectors)[:, 0]) if vectors is not None else set()
    if "zones" in layers:
        zones = pyogrio.read_dataframe(vectors, layer="zones").to_crs(crs)
        zones = zones.set_geometry(zones.geometry.affine_transform(affine))
        zones.plot(
            ax=ax,
            column="damaged_pixel_share",
            cmap="Reds",
            vmin=0,
            vmax=0.3,
            alpha=0.45,
            edgecolor="#666",
            linewidth=0.3,
            missing_kwds={"color": "none"},
        )
        handles.append(Patch(facecolor=plt.get_cmap("Reds")(0.9), alpha=0.45, label="zone: ≥30 % pixels damaged"))
    if "buildings" in layers:
        b = pyogrio.read_dataframe(vectors, layer="buildings", columns=["damage_class"]).to_crs(crs)
        b = b.set_geometry(b.geometry.affine_transform(affine))
        colors = [legend.hex(int(v)) if v >= 0 else "#969696" for v in b["damage_class"]]
        b.plot(ax=ax, color=colors, edgecolor="black", linewidth=0.3)
        for v in sorted(set(int(x) for x in b["damage_class"])):
            handles.append(Patch(color=legend.hex(v) if v >= 0 else "#969696", label="building: " + legend.name(v)))
    if suggestions is not None:
        tiles = pyogrio.read_dataframe(suggestions).to_crs(crs)
        tiles = tiles.set_geometry(tiles.geometry.affine_transform(affine))
        tiles.boundary.plot(ax=ax, color="#00bcd4", linewidth=1.5, linestyle="--")
        handles.append(Patch(facecolor="none", edgecolor="#00bcd4", label="tile to label next"))
    if handles:
        ax.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.9)
    decorate(ax, transform, crs, shape)
    return to_png(fig)
