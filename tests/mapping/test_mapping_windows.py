from __future__ import annotations

import numpy as np
import pytest

from damagemap.errors import ConfigError
from damagemap.mapping.windows import TileGrid, tile_starts


@pytest.mark.parametrize(
    "size,tile,stride", [(300, 64, 48), (320, 64, 64), (64, 64, 48), (40, 64, 48), (1000, 256, 224)]
)
def test_tile_starts_cover_and_shift_inward(size, tile, stride):
    starts = tile_starts(size, tile, stride)
    assert starts[0] == 0 and starts == sorted(set(starts))
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s : s + tile] = True
        if size >= tile:
            assert s + tile <= size  # never past the edge: last tile shifted inward
    assert covered.all()
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def _check_grid(grid: TileGrid, batch: int = 3) -> None:
    seen: dict[tuple[int, int], set[int]] = {}
    for band in range(grid.n_bands):
        cols = grid.band_columns(band)
        x0, x1 = cols.start * grid.block_px, min(cols.stop * grid.block_px, grid.width)
        for unit in grid.units(band, batch):
            for tiles in unit.batches:
                assert 1 <= len(tiles) <= batch
                for t in tiles:
                    assert t.row // grid.block_px == unit.r
                    assert t.col < x1 and t.col + t.size > x0  # intersects the band
                    seen.setdefault((t.row, t.col), set()).add(band)
    assert len(seen) == grid.n_tiles  # every tile is scheduled (per band it touches)
    for (_row, col), bands in seen.items():
        touching = {c // (grid.band_blocks * grid.block_px) for c in range(col, min(col + grid.tile, grid.width))}
        assert bands == touching


def test_grid_units_assign_every_tile_once_per_band():
    _check_grid(TileGrid(300, 200, tile=64, overlap=16, block=64))
    _check_grid(TileGrid(700, 500, tile=64, overlap=16, block=32, band_px=128))
    _check_grid(TileGrid(50, 40, tile=64, overlap=16, block=32))


def test_blocks_tile_the_raster():
    grid = TileGrid(300, 200, tile=64, overlap=16, block=128)
    cover = np.zeros((200, 300), int)
    for b in grid.blocks():
        cover[b.row : b.row + b.height, b.col : b.col + b.width] += 1
    assert (cover == 1).all()
    edge = grid.make_tile(grid.rows[-1], grid.cols[-1]).edges
    assert edge == (False, True, False, True)


@pytest.mark.parametrize("kw", [dict(overlap=40), dict(overlap=-1), dict(block=100), dict(tile=8)])
def test_grid_rejects_bad_parameters(kw):
    args = dict(tile=64, overlap=16, block=64) | kw
    with pytest.raises(ConfigError):
        TileGrid(300, 200, **args)


@pytest.mark.parametrize(
    ("width", "bands", "widths"),
    [(4864, 1, [10]), (9984, 2, [10, 10]), (6144, 2, [6, 6]), (8704, 2, [9, 8]), (1024, 1, [2])],
)
def test_bands_are_balanced_without_a_narrow_remainder(width, bands, widths):
    grid = TileGrid(width, 512, tile=256, overlap=8, block=512, band_px=4096)  # 8 blocks per band nominally
    assert grid.n_bands == bands
    assert [len(grid.band_columns(b)) for b in range(grid.n_bands)] == widths
    assert max(widths) * 512 <= 1.5 * 4096


def test_a_scene_one_band_wide_predicts_each_tile_once():
    grid = TileGrid(4864, 1024, tile=256, overlap=8, block=512)  # 9.5 blocks: no band boundary
    predicted = sum(len(t) for band in range(grid.n_bands) for u in grid.units(band, 4) for t in u.batches)
    assert predicted == grid.n_tiles
