"""Streaming raster output: checkpointed blocks → tiled GeoTIFFs → Cloud-Optimized GeoTIFFs.

Finished blocks go to the checkpoint first (one small file each, see
:mod:`damagemap.mapping.checkpoint`) rather than straight into a GeoTIFF: a GeoTIFF that is
being written does not survive a kill -9 in a reopenable state, the block files do.

Each block is also written, as soon as it is finished, into tiled GeoTIFFs in the work
directory (same size, CRS and transform as the scene; :class:`Assembly`), which are then
converted with GDAL's COG driver: DEFLATE level 1, 512 px blocks (smaller for rasters under 1024 px, so they still get
overviews), overviews averaged for probability/uncertainty and NEAREST for the class map
(nodata 255 is respected). The overviews are built block by block beside the assembly
(:mod:`damagemap.mapping.overviews`), so the COG driver only copies them. GDAL's COG output
is deterministic, so the same blocks give byte-identical files. Every output is written under
a temporary name and moved to its final name with ``os.replace`` only once all outputs are
complete (:func:`publish`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import rasterio
import rasterio.io
import rasterio.shutil
from rasterio.transform import Affine

from damagemap import io_atomic
from damagemap.geo.raster import SceneInfo
from damagemap.mapping.checkpoint import Checkpoint
from damagemap.mapping.classes import ClassLegend
from damagemap.mapping.encoding import CLASS, LAYERS, LEVELS, NODATA, PROBABILITY, UNCERTAINTY, damaged_mask
from damagemap.mapping.overviews import Pyramid, pyramid_levels
from damagemap.mapping.windows import Block, TileGrid

FILENAMES = {PROBABILITY: "damage_probability.tif", CLASS: "damage_class.tif", UNCERTAINTY: "uncertainty.tif"}
DESCRIPTIONS = {
    PROBABILITY: "damage probability (value/254; 255 = nodata)",
    CLASS: "damage class (255 = nodata)",
    UNCERTAINTY: "normalised predictive entropy (value/254; 255 = nodata)",
}
OVERVIEW_RESAMPLING = {PROBABILITY: "AVERAGE", CLASS: "NEAREST", UNCERTAINTY: "AVERAGE"}
COG_DEFLATE_LEVEL = 1
"""Fast DEFLATE: ~2× faster COG creation than level 6 for ~30 % larger files (still small)."""


ASSEMBLY_ZSTD: dict[str, object] = {"compress": "zstd", "zstd_level": 1}
ASSEMBLY_FALLBACK: dict[str, object] = {"compress": "deflate", "zlevel": 1}


@functools.lru_cache(maxsize=1)
def assembly_compression() -> dict[str, object]:
    """Creation options of the intermediate class map: ZSTD level 1, or DEFLATE level 1 without ZSTD.

    The intermediate files are written while the model runs and read once by the COG
    conversion, so cheap compression matters more than size: ZSTD 1 costs a fraction of
    DEFLATE's CPU time. A GDAL built without ZSTD would silently write an uncompressed file, so
    support is probed once on a tiny in-memory file.
    """
    codec = str(ASSEMBLY_ZSTD["compress"])
    probe = {"driver": "GTiff", "width": 16, "height": 16, "count": 1, "dtype": "uint8", "crs": "EPSG:4326"}
    with rasterio.io.MemoryFile() as mem:
        with mem.open(**probe, transform=Affine(1, 0, 0, 0, -1, 16), **ASSEMBLY_ZSTD) as ds:
            ds.write(np.zeros((1, 16, 16), np.uint8))
        with mem.open() as ds:
            supported = ds.compression is not None and ds.compression.value.lower() == codec
    return dict(ASSEMBLY_ZSTD if supported else ASSEMBLY_FALLBACK)


def layer_compression(layer: str) -> dict[str, object]:
    """Compression of one intermediate layer: the class map compressed, the noisy 8-bit layers not.

    Probability and uncertainty vary pixel to pixel: ZSTD 1 saved only a third of their bytes
    at four times the write time (one 23.7 MP layer: 17.0 against 25.6 MB, 0.12–0.14 s against
    0.03 s), and the COG conversion then reads them without decoding. The class map shrinks
    many times over.
    """
    return assembly_compression() if layer == CLASS else {}


def cog_blocksize(width: int, height: int) -> int:
    """512 px COG blocks; smaller for small rasters so they still get at least one overview."""
    side = max(width, height)
    return 512 if side >= 1024 else 256 if side >= 512 else 128


class Assembly:
    """The three output layers as tiled GeoTIFFs in ``checkpoint.tmp_dir``, written block by block as blocks finish.

    Writing each block when it is checkpointed (instead of re-reading every block file after the
    last prediction) overlaps the writing with the model; :meth:`add_resumed` copies in the blocks
    a resumed run does not predict again. ``legend`` colours the class map and names its classes
    in the band description; ``tags`` (the provenance, :func:`damagemap.mapping.provenance.flat_tags`)
    go into every file's metadata. Per-block pixel counts are integers, so :meth:`stats` does not
    depend on the order blocks arrive in.
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        grid: TileGrid,
        scene: SceneInfo,
        legend: ClassLegend,
        damaged: Iterable[int],
        tags: dict[str, str] | None = None,
    ) -> None:
        profile = {
            "driver": "GTiff",
            "width": scene.width,
            "height": scene.height,
            "count": 1,
            "dtype": "uint8",
            "crs": scene.crs,
            "transform": scene.transform,
            "nodata": NODATA,
            "tiled": True,
            "blockxsize": grid.block_px,
            "blockysize": grid.block_px,
            "BIGTIFF": "IF_SAFER",
        }
        self.checkpoint, self.grid, self.damaged = checkpoint, grid, list(damaged)
        self.paths = {name: checkpoint.tmp_dir / f"{name}.assembly.tif" for name in LAYERS}
        self._counts: dict[tuple[int, int], tuple[int, int, int]] = {}  # block -> valid, damaged, Σ probability
        self._datasets = {}
        levels = pyramid_levels(scene.width, scene.height, cog_blocksize(scene.width, scene.height), grid.block_px)
        self.pyramids: dict[str, Pyramid] = {}
        try:
            for name, path in self.paths.items():
                codec = layer_compression(name)
                if levels:
                    self.pyramids[name] = Pyramid(path, profile, codec, levels, nearest=name == CLASS)
                ds = self._datasets[name] = rasterio.open(path, "w", **profile, **codec)
                description = DESCRIPTIONS[name]
                if name == CLASS:
                    description += ": " + ", ".join(f"{i} {n}" for i, n in enumerate(legend.names))
                    ds.write_colormap(1, legend.colormap())
                ds.set_band_description(1, description)
                ds.update_tags(**(tags or {}), DAMAGEMAP_LAYER=name)
                if name != CLASS:
                    ds.scales = (1.0 / LEVELS,)
        except BaseException:
            self.close()
            raise

    def write(self, block: Block, layers: dict[str, np.ndarray]) -> None:
        """Write one finished block's layers and count its pixels."""
        for name, ds in self._datasets.items():
            ds.write(layers[name], 1, window=block.window)
            if name in self.pyramids:
                self.pyramids[name].write(block, layers[name])
        cls, prob = layers[CLASS], layers[PROBABILITY]
        valid = int(np.count_nonzero(cls != NODATA))
        # probability is 255 exactly where the class map is nodata: no masked copy to sum
        self._counts[(block.r, block.c)] = (
            valid,
            int(np.count_nonzero(damaged_mask(cls, self.damaged))),
            int(prob.sum(dtype=np.int64)) - NODATA * (prob.size - valid),
        )

    def add_resumed(self) -> None:
        """Write the checkpointed blocks not yet written (those of an earlier, interrupted run)."""
        for block in self.grid.blocks():
            if (block.r, block.c) not in self._counts and self.checkpoint.done(block):
                self.write(block, self.checkpoint.load(block))

    def close(self) -> dict[str, Path]:
        """Close the files; their paths by layer."""
        for ds in self._datasets.values():
            ds.close()
        for pyramid in self.pyramids.values():
            pyramid.close()
        return self.paths

    def to_cog(self, name: str, dst: Path) -> None:
        """Convert layer ``name`` (closed) into the COG ``dst`` (with its prebuilt overviews); drop the sources."""
        src, pyramid = self.paths[name], self.pyramids.get(name)
        vrt = pyramid.vrt(src) if pyramid is not None else None
        to_cog(vrt or src, dst, name, self.grid.width, self.grid.height, prebuilt_overviews=vrt is not None)
        if pyramid is not None:
            pyramid.remove(vrt)
        src.unlink()

    def stats(self) -> dict[str, float]:
        """Valid / damaged pixel counts and mean damage probability of the written blocks."""
        valid = sum(v for v, _, _ in self._counts.values())
        hit = sum(d for _, d, _ in self._counts.values())
        prob_sum = sum(p for _, _, p in self._counts.values())
        return {
            "valid_pixels": valid,
            "damaged_pixels": hit,
            "mean_probability": prob_sum / LEVELS / valid if valid else float("nan"),
        }


def to_cog(src: Path, dst: Path, layer: str, width: int, height: int, *, prebuilt_overviews: bool = False) -> None:
    """Convert a tiled GeoTIFF (or VRT) into a COG with overviews (deterministic bytes).

    ``prebuilt_overviews``: copy the overviews ``src`` has (:mod:`damagemap.mapping.overviews`)
    instead of computing them.
    """
    rasterio.shutil.copy(
        src,
        dst,
        driver="COG",
        COMPRESS="DEFLATE",
        LEVEL=COG_DEFLATE_LEVEL,
        BLOCKSIZE=cog_blocksize(width, height),
        OVERVIEWS="FORCE_USE_EXISTING" if prebuilt_overviews else "AUTO",
        RESAMPLING=OVERVIEW_RESAMPLING[layer],
        OVERVIEW_RESAMPLING=OVERVIEW_RESAMPLING[layer],
        NUM_THREADS="ALL_CPUS",  # parallel compression; the bytes are the same as single-threaded
        BIGTIFF="IF_SAFER",
    )


publish = io_atomic.publish  # kept importable from here: the mapping outputs' last step
