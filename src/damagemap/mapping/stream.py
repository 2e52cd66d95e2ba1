"""The prediction loop: batches of tiles → blended blocks → checkpointed block files.

Work is scheduled band by band, unit by unit (see :mod:`damagemap.mapping.windows`). On resume,
each band restarts at its first block row with an unfinished block; the batches of earlier
units that reach into that row are recomputed whole (batch composition is fixed by the grid,
so every tile's prediction — and every float sum — is the same as in an uninterrupted run).
Finished block rows are encoded and checkpointed as soon as no later tile can touch them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from rich.progress import Progress

from damagemap.geo.raster import ReadPlan
from damagemap.heap import HeapTrimmer, release_free_heap
from damagemap.mapping.blending import BandAccumulator
from damagemap.mapping.checkpoint import Checkpoint
from damagemap.mapping.encoding import encode
from damagemap.mapping.windows import Block, Tile, TileGrid


@dataclass
class StreamStats:
    """Counts of one prediction pass."""

    tiles_predicted: int = 0
    tiles_nodata: int = 0
    blocks_written: int = 0
    blocks_resumed: int = 0


def first_open_row(grid: TileGrid, checkpoint: Checkpoint, band: int) -> int:
    """First block row of ``band`` with a block not yet checkpointed (``n_block_rows`` if none)."""
    for r in range(grid.n_block_rows):
        if not all(checkpoint.done(b) for b in grid.band_blocks_in_row(band, r)):
            return r
    return grid.n_block_rows


def schedule(grid: TileGrid, starts: dict[int, int], batch: int) -> Iterator[tuple[int, int, list[Tile]]]:
    """The batches still needed, as ``(band, unit_row, tiles)`` in processing order (lazily, band by band)."""
    for band in range(grid.n_bands):
        r0 = starts[band]
        if r0 >= grid.n_block_rows:
            continue
        for unit in grid.units(band, batch):
            for tiles in unit.batches:
                if unit.r >= r0 or any(grid.tile_block_rows(t).stop - 1 >= r0 for t in tiles):
                    yield band, unit.r, tiles


def predict_blocks(
    executor,
    plan: ReadPlan,
    grid: TileGrid,
    checkpoint: Checkpoint,
    *,
    num_outputs: int,
    batch: int,
    threshold: float,
    progress: Progress | None = None,
    on_block: Callable[[Block, dict[str, np.ndarray]], None] | None = None,
) -> StreamStats:
    """Predict every unfinished block of the scene and checkpoint it (then pass it to ``on_block``)."""
    stats = StreamStats()
    starts = {band: first_open_row(grid, checkpoint, band) for band in range(grid.n_bands)}
    stats.blocks_resumed = sum(checkpoint.done(b) for b in grid.blocks())
    accumulators = {band: BandAccumulator(grid, band, num_outputs, first_row=r0) for band, r0 in starts.items()}
    next_row = dict(starts)  # per band: the next block row to finish

    trimmer = HeapTrimmer()

    def finish_rows(band: int, upto: int) -> None:
        """Finish the rows of ``band`` below ``upto`` (exclusive)."""
        acc = accumulators[band]
        while next_row[band] < min(upto, grid.n_block_rows):
            for block, probs, valid in acc.pop_row(next_row[band]):
                layers = encode(probs, valid, threshold)
                checkpoint.save(block, layers)
                if on_block is not None:
                    on_block(block, layers)
                stats.blocks_written += 1
            next_row[band] += 1
            trimmer.maybe_trim()  # a row's buffers were just freed

    submitted: deque[tuple[int, int, list[Tile]]] = deque()

    def jobs() -> Iterator[tuple]:
        for entry in schedule(grid, starts, batch):
            submitted.append(entry)
            yield plan, [(t.row, t.col) for t in entry[2]], grid.tile, num_outputs

    total = sum(len(e[2]) for e in schedule(grid, starts, batch))
    task = progress.add_task("map tiles", total=total, info="") if progress is not None else None
    current_band = 0
    for result in executor.map(jobs()):
        band, unit_row, tiles = submitted.popleft()
        while current_band < band:  # earlier bands are complete
            finish_rows(current_band, grid.n_block_rows)
            current_band += 1
        finish_rows(band, unit_row)
        acc = accumulators[band]
        j = 0
        for tile, has_data, valid in zip(tiles, result.has_data, result.valid):
            if has_data:
                acc.add(tile, result.probs[j], valid)
                j += 1
                stats.tiles_predicted += 1
            else:
                acc.add(tile, None, valid)
                stats.tiles_nodata += 1
        if progress is not None and task is not None:
            progress.advance(task, len(tiles))
    for band in range(grid.n_bands):
        finish_rows(band, grid.n_block_rows)
    release_free_heap()  # before the COG conversion allocates its own buffers
    return stats
