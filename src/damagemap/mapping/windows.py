"""The tiling grid: tiles with overlap, output blocks, and the order work is done in.

Tiles are ``tile × tile`` pixels, ``overlap`` pixels overlap, so the stride is
``tile - overlap``. **Edge tiles are shifted inward**: the last tile of a row/column starts at
``size - tile`` so every tile lies fully inside the scene and sees full context (no padded
tiles), at the cost of a larger overlap with its neighbour there. Only when the scene is
smaller than one tile in a dimension is that single tile padded (read boundless, padding
marked nodata).

Output is produced in **blocks** (``block × block`` pixels, aligned with the output GeoTIFF
tiling). Blocks are grouped into vertical **bands** of about ``band_px`` pixels (balanced: the
scene's block columns are split into the nearest whole number of equal bands, so no narrow
remainder band repeats a column of tiles for a few blocks; at most 1.5 × ``band_px``); inside a band, work
proceeds one block row at a time (a **unit**): a unit holds the tiles whose top edge lies in
that block row, so when units ``0..r`` are done every tile touching block row ``r`` is done
and the row can be written. Only the live block rows of one band are held in memory, so peak
memory depends on ``band_px``, ``block`` and ``tile`` — never on the scene's size. Tiles
crossing a band boundary are predicted once per band (about ``tile / band_px`` extra work).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from rasterio.windows import Window

from damagemap.errors import ConfigError

BAND_PX = 4096
"""Default band width in pixels (accumulator memory ≈ band width × (block + tile) × (K+1) × 4 B)."""


@dataclass(frozen=True)
class Tile:
    """One model input window: top-left ``(row, col)`` and whether each side is a scene edge."""

    row: int
    col: int
    size: int
    edges: tuple[bool, bool, bool, bool]  # top, bottom, left, right

    @property
    def window(self) -> Window:
        """The tile's read window."""
        return Window(self.col, self.row, self.size, self.size)


@dataclass(frozen=True)
class Block:
    """One output block: index ``(r, c)`` in the block grid and its pixel window."""

    r: int
    c: int
    row: int
    col: int
    height: int
    width: int

    @property
    def name(self) -> str:
        """File name of the block's checkpoint."""
        return f"r{self.r:05d}_c{self.c:05d}"

    @property
    def window(self) -> Window:
        """The block's write window."""
        return Window(self.col, self.row, self.width, self.height)


@dataclass
class Unit:
    """The tiles of one band whose top edge lies in block row ``r``, in fixed batches."""

    band: int
    r: int
    batches: list[list[Tile]] = field(default_factory=list)


def tile_starts(size: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one axis, the last one shifted inward to end at ``size``."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


class TileGrid:
    """Tiles, blocks, bands and units over a ``height × width`` raster."""

    def __init__(self, width: int, height: int, *, tile: int, overlap: int, block: int, band_px: int = BAND_PX) -> None:
        if tile < 16:
            raise ConfigError(f"tile must be >= 16 pixels, got {tile}")
        if not 0 <= overlap <= tile // 2:
            raise ConfigError(f"overlap must be between 0 and tile/2 = {tile // 2}, got {overlap}")
        if block < 16 or block % 16:
            raise ConfigError(f"block must be a positive multiple of 16, got {block}")
        self.width, self.height = int(width), int(height)
        self.tile, self.overlap, self.block_px = tile, overlap, block
        self.stride = tile - overlap
        self.rows = tile_starts(self.height, tile, self.stride)
        self.cols = tile_starts(self.width, tile, self.stride)
        self.n_block_rows = math.ceil(self.height / block)
        self.n_block_cols = math.ceil(self.width / block)
        # 10 block columns at 8 per band: one band of 10, not 8 + 2 (whose boundary tiles run twice)
        n_bands = max(1, round(self.n_block_cols / max(1, band_px // block)))
        self.band_blocks = math.ceil(self.n_block_cols / n_bands)
        self.n_bands = math.ceil(self.n_block_cols / self.band_blocks)

    @property
    def n_tiles(self) -> int:
        """Distinct tiles (tiles repeated across band boundaries are counted once)."""
        return len(self.rows) * len(self.cols)

    def make_tile(self, row: int, col: int) -> Tile:
        """The tile at ``(row, col)`` with its scene-edge flags."""
        t = self.tile
        edges = (row == 0, row + t >= self.height, col == 0, col + t >= self.width)
        return Tile(row, col, t, edges)

    def block(self, r: int, c: int) -> Block:
        """Block ``(r, c)`` of the block grid."""
        b = self.block_px
        row, col = r * b, c * b
        return Block(r, c, row, col, min(b, self.height - row), min(b, self.width - col))

    def blocks(self) -> Iterator[Block]:
        """Every block, row-major."""
        for r in range(self.n_block_rows):
            for c in range(self.n_block_cols):
                yield self.block(r, c)

    def band_columns(self, band: int) -> range:
        """Block-column indexes of ``band``."""
        start = band * self.band_blocks
        return range(start, min(start + self.band_blocks, self.n_block_cols))

    def band_blocks_in_row(self, band: int, r: int) -> list[Block]:
        """The blocks of ``band`` in block row ``r``."""
        return [self.block(r, c) for c in self.band_columns(band)]

    def tile_block_rows(self, tile: Tile) -> range:
        """Block rows a tile's in-scene part touches."""
        bottom = min(tile.row + tile.size, self.height) - 1
        return range(tile.row // self.block_px, bottom // self.block_px + 1)

    def units(self, band: int, batch: int) -> list[Unit]:
        """The units of one band in processing order, tiles in row-major order, fixed batches."""
        cols = self.band_columns(band)
        x0, x1 = cols.start * self.block_px, min(cols.stop * self.block_px, self.width)
        band_cols = [c for c in self.cols if c < x1 and c + self.tile > x0]
        units = [Unit(band, r) for r in range(self.n_block_rows)]
        per_unit: list[list[Tile]] = [[] for _ in units]
        for row in self.rows:
            for col in band_cols:
                per_unit[row // self.block_px].append(self.make_tile(row, col))
        for unit, tiles in zip(units, per_unit):
            unit.batches = [tiles[i : i + batch] for i in range(0, len(tiles), batch)]
        return units
