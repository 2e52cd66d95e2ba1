"""Blend overlapping tile predictions so seams vanish.

Each tile's prediction is weighted by a separable raised-cosine window: 1 in the interior and
a half-cosine ramp ``0.5 - 0.5·cos(π(i + ½)/O)`` over the ``O`` overlap pixels of every side
that has a neighbouring tile. Sides on the scene edge get no ramp (no other tile covers
them). The ramp is never exactly zero (the ``+ ½`` keeps the first pixel positive), and two
opposite ramps sum to exactly 1 at regular stride, so the weights are a partition of unity
where tiles overlap regularly. Blended output = Σ w·p / Σ w per pixel, which reproduces any
prediction that agrees across tiles exactly and turns tile-to-tile disagreement into a smooth
transition over the overlap instead of a step.

:class:`BandAccumulator` keeps Σ w·p and Σ w (float32) for the live blocks of one band and
hands back finished block rows. Contributions are added in the fixed tile order of the grid,
so the float sums — and the written bytes — do not depend on how the work was scheduled.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from damagemap.mapping.windows import Block, Tile, TileGrid


def ramp(overlap: int) -> np.ndarray:
    """Rising half-cosine of length ``overlap``: strictly inside (0, 1), ``ramp + ramp[::-1] == 1``."""
    i = np.arange(overlap, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / overlap)


def weight_1d(size: int, overlap: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """1 over ``size`` pixels, with a rising / falling ramp over ``overlap`` pixels at either end."""
    w = np.ones(size, dtype=np.float64)
    if overlap > 0:
        r = ramp(overlap)
        if ramp_start:
            w[:overlap] = r
        if ramp_end:
            w[size - overlap :] = r[::-1]
    return w


@lru_cache(maxsize=32)
def weight_window(size: int, overlap: int, edges: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """``[size, size]`` float32 weights for a tile whose (top, bottom, left, right) sides are scene edges."""
    top, bottom, left, right = edges
    wy = weight_1d(size, overlap, not top, not bottom)
    wx = weight_1d(size, overlap, not left, not right)
    out = np.outer(wy, wx).astype(np.float32)
    out.setflags(write=False)
    return out


class _BlockSums:
    __slots__ = ("num", "den", "valid")

    def __init__(self, k: int, h: int, w: int) -> None:
        self.num = np.zeros((k, h, w), dtype=np.float32)
        self.den = np.zeros((h, w), dtype=np.float32)
        self.valid = np.zeros((h, w), dtype=bool)


class BandAccumulator:
    """Weighted sums for the blocks of one band that are still being filled."""

    def __init__(self, grid: TileGrid, band: int, num_outputs: int, first_row: int = 0) -> None:
        self.grid, self.band, self.k = grid, band, num_outputs
        self.columns = grid.band_columns(band)
        self.first_row = first_row  # block rows above it are finished: contributions dropped
        self._live: dict[tuple[int, int], _BlockSums] = {}

    def _sums(self, block: Block) -> _BlockSums:
        key = (block.r, block.c)
        if key not in self._live:
            self._live[key] = _BlockSums(self.k, block.height, block.width)
        return self._live[key]

    def add(self, tile: Tile, probs: np.ndarray | None, valid: np.ndarray) -> None:
        """Add one tile. ``probs`` ``[K, T, T]`` (None for an all-nodata tile), ``valid`` ``[T, T]``."""
        g, t = self.grid, tile.size
        weight = weight_window(t, g.overlap, tile.edges)
        c_lo = max(tile.col // g.block_px, self.columns.start)
        c_hi = min((min(tile.col + t, g.width) - 1) // g.block_px, self.columns.stop - 1)
        for r in g.tile_block_rows(tile):
            if r < self.first_row:
                continue
            for c in range(c_lo, c_hi + 1):
                block = g.block(r, c)
                y0, y1 = max(block.row, tile.row), min(block.row + block.height, tile.row + t)
                x0, x1 = max(block.col, tile.col), min(block.col + block.width, tile.col + t)
                if y0 >= y1 or x0 >= x1:
                    continue
                tsl = (slice(y0 - tile.row, y1 - tile.row), slice(x0 - tile.col, x1 - tile.col))
                bsl = (slice(y0 - block.row, y1 - block.row), slice(x0 - block.col, x1 - block.col))
                sums = self._sums(block)
                sums.valid[bsl] |= valid[tsl]
                if probs is None:
                    continue
                w = weight[tsl]
                every_k_bsl, every_k_tsl = (slice(None), *bsl), (slice(None), *tsl)  # all K class planes
                sums.num[every_k_bsl] += probs[every_k_tsl] * w
                sums.den[bsl] += w

    def pop_row(self, r: int) -> list[tuple[Block, np.ndarray, np.ndarray]]:
        """Finish block row ``r``: ``(block, probs [K, h, w] float32, valid [h, w])`` per block.

        Pixels no predicted tile covered are invalid (they were all nodata).
        """
        out = []
        for c in self.columns:
            block = self.grid.block(r, c)
            sums = self._live.pop((r, c), None) or _BlockSums(self.k, block.height, block.width)
            covered = sums.den > 0
            probs = np.zeros_like(sums.num)
            np.divide(sums.num, sums.den, out=probs, where=covered[None])
            out.append((block, probs, sums.valid & covered))
        return out

    @property
    def live_blocks(self) -> int:
        """Blocks currently holding partial sums."""
        return len(self._live)
