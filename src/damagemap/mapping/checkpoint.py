"""Resume ledger: finished blocks are checkpointed in a work directory inside ``out_dir``.

Layout of ``out_dir/.damagemap-work/``::

    ledger.json        {"key": sha256, "params": {...}} — which run these blocks belong to
    blocks/r00000_c00001.npy   the three encoded uint8 layers of one finished block ([3, h, w],
                               uncompressed: 3 bytes per pixel of temporary disk, fast)
    tmp/               assembly of the outputs (recreated on every run)

The key hashes the scene's identity (:func:`scene_identity`), the predictor's
fingerprint and every parameter that can change pixels (tile, overlap, block, band width, spec,
threshold, and batch — batch composition can change a real model's floats). A run with the
same key continues from the finished blocks; any other key wipes the directory and starts over.
A block counts as finished iff its ``.npy`` exists: it is written under a temporary name and
renamed, so a kill -9 never leaves a half block. Worker count is not part of the key (results
do not depend on it). The directory is removed when the outputs are published. One run per
``out_dir`` at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from damagemap.errors import InputError
from damagemap.geo.raster import describe, gdal_env, gdal_messages, remote_problem
from damagemap.geo.sources import SceneLike, http_headers, resolve_scene
from damagemap.io_atomic import atomic_path, write_bytes_atomic
from damagemap.locks import LOCK_NAME
from damagemap.mapping.encoding import LAYERS
from damagemap.mapping.windows import Block

WORK_DIRNAME = ".damagemap-work"
FORMAT_VERSION = 2


SAMPLE_PX = 256
"""Side of the pixel windows a remote scene's identity hashes."""


def scene_identity(scene: SceneLike) -> dict[str, Any]:
    """What identifies a scene's content for the resume ledger: cheap, and changes when the scene does.

    A local file (also a STAC asset that is one): size, mtime and the sha256 of its first 64 KiB
    (the TIFF header and tile index). A remote scene — read without downloading it: the GDAL
    path (URL), the HTTP ``ETag``/``Last-Modified``/``Content-Length`` of an http(s) URL (one
    HEAD request; rasterio 1.4 and pyogrio expose no ``VSIStatL``/``VSIGetFileMetadata``, so
    GDAL's own stat is out of reach), what GDAL reports about the raster (size, bands, types,
    nodata, CRS, transform, block shapes, overviews, tags) and the sha256 of the pixels and
    masks of three :data:`SAMPLE_PX`-pixel windows (top-left, centre, bottom-right). That
    detects a replaced or re-encoded file, changed georeferencing or bands, and any pixel change
    in the sampled windows; without ETag/Last-Modified (``/vsis3/``, ``/vsigs/``, or a server
    that refuses HEAD) an in-place edit of other pixels that keeps everything else is not
    detected — map such a scene into a fresh ``out_dir``.
    """
    source = resolve_scene(scene)
    if source.local:
        st = os.stat(source.gdal_path)
        with open(source.gdal_path, "rb") as f:
            head = hashlib.sha256(f.read(65536)).hexdigest()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_sha256": head}
    identity: dict[str, Any] = {"location": source.gdal_path, "http": http_headers(source)}
    with gdal_env(source.gdal_path), gdal_messages(source.remote) as messages:
        try:
            with rasterio.open(source.gdal_path) as src:
                identity["raster"] = _raster_facts(src)
                identity["sample_sha256"] = _sample_hash(src)
        except RasterioError as exc:
            problem = remote_problem(exc, messages, source.gdal_path) if source.remote else describe(exc)
            raise InputError(source.name, f"cannot read the scene to identify it: {problem}") from None
    return identity


def _raster_facts(src: rasterio.io.DatasetReader) -> dict[str, Any]:
    return {
        "width": src.width,
        "height": src.height,
        "count": src.count,
        "dtypes": list(src.dtypes),
        "nodata": list(src.nodatavals),
        "crs": src.crs.to_wkt() if src.crs is not None else None,
        "transform": list(src.transform)[:6],
        "block_shapes": [list(b) for b in src.block_shapes],
        "overviews": src.overviews(1),
        "tags": src.tags(),
        "structure": src.tags(ns="IMAGE_STRUCTURE"),
    }


def _sample_hash(src: rasterio.io.DatasetReader) -> str:
    h, w = min(SAMPLE_PX, src.height), min(SAMPLE_PX, src.width)
    digest = hashlib.sha256()
    for row, col in ((0, 0), ((src.height - h) // 2, (src.width - w) // 2), (src.height - h, src.width - w)):
        window = Window(col, row, w, h)
        digest.update(np.ascontiguousarray(src.read(window=window)).tobytes())
        digest.update(np.ascontiguousarray(src.read_masks(window=window)).tobytes())
    return digest.hexdigest()


def ledger_key(params: dict[str, Any]) -> str:
    """The hash of every parameter that can change a block's bytes."""
    blob = json.dumps({"format": FORMAT_VERSION, **params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


FINISHED_BLOCKS = "r*_c*.npy"
"""Glob of the finished block files (not the hidden temporary file of a block being saved)."""


class Checkpoint:
    """The work directory of one mapping run."""

    def __init__(self, out_dir: str | os.PathLike, params: dict[str, Any]) -> None:
        self.root = Path(out_dir) / WORK_DIRNAME
        self.blocks_dir = self.root / "blocks"
        self.tmp_dir = self.root / "tmp"
        self.params = params
        self.key = ledger_key(params)
        self.resumed = False

    def open(self) -> None:
        """Continue a run with the same key, or start a fresh work directory."""
        ledger = self.root / "ledger.json"
        try:
            self.resumed = json.loads(ledger.read_text())["key"] == self.key
        except (OSError, ValueError, KeyError, TypeError):
            self.resumed = False
        if not self.resumed and self.root.exists():
            for child in self.root.iterdir():  # all but the run's lock file (damagemap.locks)
                if child.name != LOCK_NAME:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        self.blocks_dir.mkdir(parents=True, exist_ok=True)
        self.clear_tmp()
        for stale in self.blocks_dir.glob("*.tmp*"):
            stale.unlink()
        if not self.resumed:
            body = json.dumps({"key": self.key, "params": self.params}, sort_keys=True, indent=1, default=str)
            write_bytes_atomic(ledger, body.encode())

    def clear_tmp(self) -> None:
        """Empty the output-assembly folder."""
        if self.tmp_dir.exists():
            shutil.rmtree(self.tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, block: Block) -> Path:  # matches FINISHED_BLOCKS; a block being saved is hidden
        return self.blocks_dir / f"{block.name}.npy"

    def done(self, block: Block) -> bool:
        """Whether ``block`` is already checkpointed."""
        return self._path(block).exists()

    def save(self, block: Block, layers: dict[str, np.ndarray]) -> None:
        """Checkpoint a finished block atomically (temporary name, then rename)."""
        with atomic_path(self._path(block)) as tmp, open(tmp, "wb") as f:
            np.save(f, np.stack([layers[name] for name in LAYERS]))

    def load(self, block: Block) -> dict[str, np.ndarray]:
        """The encoded layers of a checkpointed block."""
        stacked = np.load(self._path(block))
        return dict(zip(LAYERS, stacked))

    def has_blocks(self) -> bool:
        """Whether any finished block is on disk."""
        return self.blocks_dir.exists() and any(self.blocks_dir.glob(FINISHED_BLOCKS))

    def remove(self) -> None:
        """Delete the whole work directory."""
        shutil.rmtree(self.root, ignore_errors=True)
