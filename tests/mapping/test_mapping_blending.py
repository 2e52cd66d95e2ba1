from __future__ import annotations

import numpy as np
import pytest

from damagemap.mapping.blending import BandAccumulator, ramp, weight_window
from damagemap.mapping.windows import TileGrid


def smooth(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return (0.5 + 0.4 * np.sin(rows / 37.0) * np.cos(cols / 29.0)).astype(np.float32)


def blend(grid: TileGrid, predict) -> tuple[np.ndarray, np.ndarray]:
    """Run every band's units through accumulators; ``predict(tile) -> [K, T, T]``."""
    out = np.full((1, grid.height, grid.width), np.nan, np.float32)
    valid_out = np.zeros((grid.height, grid.width), bool)
    for band in range(grid.n_bands):
        acc = BandAccumulator(grid, band, 1)
        for unit in grid.units(band, batch=4):
            for tiles in unit.batches:
                for t in tiles:
                    valid = np.zeros((t.size, t.size), bool)
                    valid[: grid.height - t.row, : grid.width - t.col] = True
                    acc.add(t, predict(t), valid)
        for r in range(grid.n_block_rows):
            for block, probs, valid in acc.pop_row(r):
                out[:, block.row : block.row + block.height, block.col : block.col + block.width] = probs
                valid_out[block.row : block.row + block.height, block.col : block.col + block.width] = valid
        assert acc.live_blocks == 0
    return out[0], valid_out


def absolute(t):
    rr, cc = np.mgrid[t.row : t.row + t.size, t.col : t.col + t.size]
    return smooth(rr, cc)[None]


def test_ramps_partition_unity_and_stay_positive():
    for o in (1, 8, 32):
        r = ramp(o)
        assert (r > 0).all() and (r < 1).all()
        np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-12)
    w = weight_window(64, 16, (False, False, False, False))
    assert w.min() > 0 and w.max() == 1.0 and w[32, 32] == 1.0
    assert weight_window(64, 16, (True, False, True, False))[0, 0] == 1.0  # scene edges: no ramp


@pytest.mark.parametrize(
    "shape,tile,overlap,block,band_px",
    [((200, 300), 64, 16, 64, 4096), ((333, 517), 64, 32, 48, 96), ((50, 40), 64, 16, 32, 4096)],
)
def test_smooth_function_of_position_reproduced_without_seams(shape, tile, overlap, block, band_px):
    h, w = shape
    grid = TileGrid(w, h, tile=tile, overlap=overlap, block=block, band_px=band_px)
    out, valid = blend(grid, absolute)
    assert valid.all()
    rr, cc = np.mgrid[0:h, 0:w]
    assert np.abs(out - smooth(rr, cc)).max() < 1e-5


def test_disagreeing_tiles_blend_into_a_smooth_transition():
    """Each tile adds its own offset (a tile-level error): overlap turns the steps into ramps."""

    def biased(t):
        offset = 0.08 * (((t.row // 48) + (t.col // 48)) % 2)
        return absolute(t) + offset

    def max_jump(img):
        return max(np.abs(np.diff(img, axis=0)).max(), np.abs(np.diff(img, axis=1)).max())

    blended, _ = blend(TileGrid(300, 200, tile=64, overlap=32, block=64), biased)
    hard, _ = blend(TileGrid(300, 200, tile=64, overlap=0, block=64), biased)
    base = max_jump(absolute(type("T", (), {"row": 0, "col": 0, "size": 300})())[0])
    assert max_jump(hard) > 0.06  # without overlap the tile offsets show as seams
    assert max_jump(blended) < base + 0.012  # with overlap: no step larger than a ramp increment
