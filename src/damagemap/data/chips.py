"""Cut large samples into non-overlapping chips (more, smaller samples for fold splits)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from damagemap.types import GeoInfo, Sample


def chip_samples(samples: Sequence[Sample], size: int) -> list[Sample]:
    """Split each sample into ``size``×``size`` chips.

    Edge remainders smaller than ``size`` are dropped; ids get a ``_r{row}c{col}`` suffix and
    georeferencing is shifted per chip.

    Samples no larger than ``size`` are kept whole.
    """
    out: list[Sample] = []
    for s in samples:
        h, w = s.image.shape[1:]
        if h <= size and w <= size:
            out.append(s)
            continue
        for r, y in enumerate(range(0, h - size + 1, size)):
            for c, x in enumerate(range(0, w - size + 1, size)):
                win = (slice(y, y + size), slice(x, x + size))
                geo = None
                if s.geo is not None:
                    a, b, c0, d, e, f = s.geo.transform
                    geo = GeoInfo(s.geo.crs, (a, b, c0 + a * x + b * y, d, e, f + d * x + e * y))
                out.append(
                    replace(
                        s,
                        image=s.image[:, win[0], win[1]],
                        mask=None if s.mask is None else s.mask[win],
                        buildings=None if s.buildings is None else s.buildings[win],
                        building_ids=None if s.building_ids is None else s.building_ids[win],
                        pre=None if s.pre is None else s.pre[:, win[0], win[1]],
                        id=f"{s.id}_r{r}c{c}",
                        geo=geo,
                        instances=None,
                        meta={**s.meta, "parent": s.id, "window": (y, x, size, size)},
                    )
                )
    return out
